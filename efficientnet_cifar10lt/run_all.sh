#!/usr/bin/env bash
# Seed 000: EfficientNet-B0 on CIFAR-10-LT -- baseline, reweight, decoupled stage 1 + five stage-2
# losses (and cRT / LWS / tau-norm beyond the seed), then the tables and figures.
#   PRESET=smoke|cpu|lite|quick|paper  (default: paper with CUDA, smoke without)
#   LTREPRO_DATA=DIR   folder holding cifar-10-batches-py/ (default ./data)
#   PLAN=1             list the runs with a time estimate from a short probe; needs no data, trains nothing
#   ONLY="PATTERN ..."  SEEDS=0,1,2  LAUNCHER=local|slurm  WORKERS=N   see common/run_all_env.sh
# Finished runs (record.json present) are skipped; interrupted ones resume from last.pt.
source "$(dirname "$0")/../common/run_all_env.sh"
check_preset efficientnet_cifar10lt/configs/base.yaml efficientnet_cifar10lt/configs/stage1.yaml \
  efficientnet_cifar10lt/configs/stage2.yaml
if [ -n "${PLAN:-}" ]; then
  exec $PY -m efficientnet_cifar10lt.grid --preset "$PRESET" --plan ${ONLY:+--only $ONLY}
fi
DATA=${LTREPRO_DATA:-data}
if [ "$PRESET" = smoke ]; then
  DATA=data/synthetic_effnet    # smoke always uses tiny synthetic data: minutes, not hours
  synthetic_data "$DATA" 40 10 cifar10
elif [ ! -f "$DATA/cifar-10-batches-py/data_batch_1" ]; then
  $PY -m common.data.fetch --root "$DATA" cifar10    # downloads it, if this machine can
fi
grid_then_report "efficientnet_cifar10lt.grid --preset $PRESET --data $DATA" \
  "efficientnet_cifar10lt.report --preset $PRESET"
