# Sourced by every study's run_all.sh: strict mode, repository root, python, default preset.
set -euo pipefail
set -f   # no filename expansion: patterns such as ONLY='cifar10_*' reach the grids as patterns
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python}
if [ -z "${PRESET:-}" ]; then
  PRESET=$($PY -c "import torch; print('paper' if torch.cuda.is_available() else 'smoke')")
  echo "PRESET not set: using $PRESET (paper with CUDA, smoke without)"
fi
# check_preset CONFIG...: stop unless every CONFIG defines $PRESET (before any data is fetched)
check_preset() { $PY -c 'import sys; from common.config import main; main(sys.argv[1:])' "$PRESET" "$@" || exit 2; }
# grid_then_report "GRID_MODULE ARGS" "REPORT_MODULE ARGS": the study's grid, then its tables.
#   ONLY="PATTERN ..."  just the runs whose names match (see python -m <study>.grid --preset P --list)
#   OUT=DIR          train in DIR/<preset>/ (e.g. outside the checkout, for runs that outlive it), then copy
#                    the finished runs' records, logs and predictions into results/<study>/runs/ for the tables
#   SEEDS=0,1,2      every run once per training seed; the tables show mean ± std and n per cell
#   LAUNCHER=local   WORKERS workers on this machine (default: WORKERS_PER_GPU, default 1, per GPU), sharing the runs
#   LAUNCHER=slurm   WORKERS array tasks (PARTITION, TIME_MIN, GPUS_PER_WORKER, CPUS_PER_WORKER), then
#                    the report as a job that starts after the array; this script returns once submitted
grid_then_report() {
  local grid=$1 report=$2 study=${1%%.*}
  if [ -n "${SEEDS:-}" ]; then grid="$grid --seeds $SEEDS"; report="$report --seeds $SEEDS"; fi
  if [ -n "${ONLY:-}" ]; then grid="$grid --only $ONLY"; fi
  if [ -n "${OUT:-}" ]; then grid="$grid --out $OUT"; fi
  if [ -z "${LAUNCHER:-}" ]; then
    $PY -m $grid
    if [ -n "${OUT:-}" ]; then $PY -m common.grid copy-finished "$OUT" "results/$study/runs" --preset "$PRESET"; fi
    $PY -m $report
  elif [ -n "${OUT:-}" ]; then
    echo "error: OUT is for serial runs; with LAUNCHER the workers share results/$study/runs" >&2
    exit 2
  else
    $PY -m common.launch --launcher "$LAUNCHER" --workers "${WORKERS:-0}" --workers-per-gpu "${WORKERS_PER_GPU:-1}" \
      ${PARTITION:+--partition "$PARTITION"} \
      ${TIME_MIN:+--time "$TIME_MIN"} ${GPUS_PER_WORKER:+--gpus-per-worker "$GPUS_PER_WORKER"} \
      ${CPUS_PER_WORKER:+--cpus-per-worker "$CPUS_PER_WORKER"} --then "$report" -- $grid
  fi
}
# synthetic_data DIR TRAIN TEST DATASET...: tiny synthetic CIFAR sets in the official format for a smoke
# preset (TRAIN / TEST images per class), written once
synthetic_data() {
  local dir=$1 train=$2 test=$3 ds folder
  shift 3
  for ds in "$@"; do
    folder=$([ "$ds" = cifar10 ] && echo cifar-10-batches-py || echo cifar-100-python)
    [ -f "$dir/$folder/SYNTHETIC" ] || $PY -m common.data.synthetic --dataset "$ds" --out "$dir" \
      --train-per-class "$train" --test-per-class "$test"
  done
  echo "smoke: synthetic $* in $dir"
}
