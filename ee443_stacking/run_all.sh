#!/usr/bin/env bash
# Seed 002: EfficientNet b0-b2 on CIFAR-50 -- the sweeps (Figs 1, 2), artificial balancing, weighted
# losses, balanced bagging, stacking and stacking / WL at imbalance 0.1 / 0.02 / 0.005, then the tables.
#   PRESET=smoke|cpu_proxy|lite_proxy|quick|paper  (default: paper with CUDA, smoke without)
#   LTREPRO_DATA=DIR   folder holding cifar-100-python/ (cifar-10-batches-py/ for the proxies; default ./data)
#   PLAN=1             count the trainings (with and without member reuse) and estimate their time from a
#                      short probe on this machine; needs no data, trains nothing
#   ONLY="PATTERN ..."  SEEDS=0,1,2  LAUNCHER=local|slurm  WORKERS=N   see common/run_all_env.sh
# Finished runs (record.json present) are skipped; interrupted ones resume from last.pt.
source "$(dirname "$0")/../common/run_all_env.sh"
check_preset ee443_stacking/configs/base.yaml
if [ -n "${PLAN:-}" ]; then
  exec $PY -m ee443_stacking.grid --preset "$PRESET" --plan ${ONLY:+--only $ONLY}
fi
DATA=${LTREPRO_DATA:-data}
if [ "$PRESET" = smoke ]; then
  DATA=data/synthetic_ee443      # smoke always uses tiny synthetic data: minutes, not hours
  synthetic_data "$DATA" 10 2 cifar100
elif [ "$PRESET" = cpu_proxy ] || [ "$PRESET" = lite_proxy ]; then
  [ -f "$DATA/cifar-10-batches-py/data_batch_1" ] || $PY -m common.data.fetch --root "$DATA" cifar10
else
  [ -f "$DATA/cifar-100-python/train" ] || $PY -m common.data.fetch --root "$DATA" cifar100
fi
grid_then_report "ee443_stacking.grid --preset $PRESET --data $DATA" "ee443_stacking.report --preset $PRESET"
