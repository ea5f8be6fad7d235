#!/usr/bin/env bash
# Seed 001 (thesis): model x loss x training-set grid, then the tables.
#   PRESET=smoke|quick|paper  (default: paper with CUDA, smoke without)
#   LTREPRO_DATA=DIR          folder holding cifar-100-python/ (default ./data)
#   MODELS="resnet50 ..."  LOSSES="ce focal ..."  TRAIN_SETS="long_tailed"   a part of the grid (default: all of it)
#   PLAN=1                    list the runs with a time estimate from a short probe (small batch: under 4 GB
#                             on a CPU); needs no data, trains nothing
#   ONLY="PATTERN ..."  SEEDS=0,1,2  LAUNCHER=local|slurm  WORKERS=N   see common/run_all_env.sh
# Finished runs (record.json present) are skipped; interrupted ones resume.
source "$(dirname "$0")/../common/run_all_env.sh"
check_preset thesis_cifar100lt/configs/base.yaml
SELECT="${MODELS:+--models $MODELS} ${LOSSES:+--losses $LOSSES} ${TRAIN_SETS:+--train-sets $TRAIN_SETS}"   # default: all
if [ -n "${PLAN:-}" ]; then
  exec $PY -m thesis_cifar100lt.grid --preset "$PRESET" --plan $SELECT ${ONLY:+--only $ONLY}
fi
DATA=${LTREPRO_DATA:-data}

if [ ! -f "$DATA/cifar-100-python/train" ]; then
  if [ "$PRESET" = smoke ]; then
    DATA=data/synthetic
    [ -f "$DATA/cifar-100-python/train" ] || \
      $PY -m common.data.synthetic --dataset cifar100 --out "$DATA" --train-per-class 5 --test-per-class 1
    echo "real CIFAR-100 not found: smoke run on synthetic CIFAR-100 in $DATA"
  else
    echo "CIFAR-100 not found in $DATA/cifar-100-python: downloading it there (torchvision)"
    $PY -m common.data.fetch --root "$DATA" cifar100
  fi
fi

grid_then_report "thesis_cifar100lt.grid --preset $PRESET --data $DATA $SELECT" "thesis_cifar100lt.report --preset $PRESET"
