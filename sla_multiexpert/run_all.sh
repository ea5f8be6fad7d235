#!/usr/bin/env bash
# Seed 003: every run of Tables 1, 2, 3 (paper preset), 7, 8 and Figure 6, then the tables.
#   PRESET=smoke|cpu_hour|quick|paper  (default: paper with CUDA, smoke without)
#   LTREPRO_DATA=DIR   folder holding cifar-10-batches-py/ and cifar-100-python/ (default ./data); a dataset
#                      that is missing and cannot be downloaded (offline) is skipped, with one line saying so:
#                      its cells are dashes in the tables
#   PLAN=1             list the runs with a time estimate from a short probe; train nothing
#   ONLY="PATTERN ..."  SEEDS=0,1,2  LAUNCHER=local|slurm  WORKERS=N   see common/run_all_env.sh
# Finished runs (record.json present) are skipped; interrupted ones resume from last.pt.
source "$(dirname "$0")/../common/run_all_env.sh"
C=sla_multiexpert/configs
check_preset $C/method.yaml $C/ce_baseline.yaml $C/ce_ldam_recipe.yaml $C/ldam_drw.yaml $C/cb_focal.yaml $C/la_menon.yaml $C/la_menon_cifar100.yaml
if [ -n "${PLAN:-}" ]; then      # run count and time estimate from a short probe; needs no data
  exec $PY -m sla_multiexpert.grid --preset "$PRESET" --plan ${ONLY:+--only $ONLY}
fi
DATA=${LTREPRO_DATA:-data}
if [ "$PRESET" = smoke ]; then
  DATA=data/synthetic_sla      # smoke always uses tiny synthetic data: minutes, not hours
  synthetic_data "$DATA" 8 2 cifar10 cifar100
else   # download what is missing, if this machine can; the grid skips the runs of a dataset still missing
  for ds in cifar10 cifar100; do $PY -m common.data.fetch --root "$DATA" $ds || true; done
  SKIP=--skip-missing-data
fi
grid_then_report "sla_multiexpert.grid --preset $PRESET --data $DATA ${SKIP:-}" \
  "sla_multiexpert.report --preset $PRESET"
