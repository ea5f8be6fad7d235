#!/usr/bin/env bash
# The checks only a real GPU can make, in one call of a few minutes: the CUDA paths the test suite
# runs on fake CUDA tensors, now on the GPU.
#   1. the machine: torch, the GPU, native bf16
#   2. the CUDA-path and mixed-precision tests (fake CUDA and real CUDA side by side)
#   3. every training step of seed 003's CIFAR-10 ratio-100 smoke runs (multi-expert, mixup, DRW,
#      LDAM, LA), then the thesis grid's smoke runs of one model (bf16 autocast, channels_last,
#      uint8 images and their augmentation on the GPU), on synthetic CIFAR made here
#   4. the throughput benchmark, eager and compiled
# Each of the six steps has its own time limit (STEP_S, default 90 s: all of them fit in one 10-minute
# call even if every one hangs), so a step that hangs costs only its own.
# What it writes goes to $RESULTS (default: $OUT, the device tool's folder, else ./gpu_check):
# gpu_check.log (everything printed, each step's exit status) and runs.tar.gz (the runs' records
# and logs: `tar xzf runs.tar.gz` gives runs/<study>/<preset>/<run>/). The packages a GPU image
# with PyTorch tends to lack (pydantic and what it needs) come as wheels in .whl/ (ignored by git,
# so carry it), fetched beforehand on a machine that reaches PyPI, at requirements.lock's versions:
#   bash scripts/gpu_check.sh wheels     # here: .whl/ for the GPU machine's Python (PY_VERSION, 3.12)
#   bash scripts/gpu_check.sh            # there (DEVICE=cpu hides the GPU: the same checks on the CPU)
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = wheels ]; then
  pins=$(grep -E '^(pydantic|pydantic-core|annotated-types|typing-inspection|typing-extensions)==' requirements.lock)
  exec ${PYTHON:-python3} -m pip download -q --no-deps --only-binary=:all: --python-version "${PY_VERSION:-3.12}" \
    --implementation cp --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl $pins
fi
RESULTS=${RESULTS:-${OUT:-gpu_check}}
unset OUT                               # the device tool's folder, not a training folder for the grids
mkdir -p "$RESULTS"
exec > >(tee "$RESULTS/gpu_check.log") 2>&1
tee_pid=$!
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
if ! $PY -c "import pydantic" 2>/dev/null && compgen -G ".whl/*.whl" >/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  if ! $PY -c "import pydantic"; then
    echo "the wheels in .whl/ do not install for $($PY -V): fetch them for it (PY_VERSION=X.Y ... wheels)"
    exit 2
  fi
fi
DEVICE=${DEVICE:-$($PY -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")}
[ "$DEVICE" = cpu ] && export CUDA_VISIBLE_DEVICES=       # the grids and tests then see no GPU either
WORK=$(mktemp -d)
failed=0
step() {    # step NAME COMMAND...: run it under its time limit, say how it ended
  local name=$1 rc
  shift
  echo "== $name: $*"
  timeout -k 10 "${STEP_S:-90}" "$@"
  rc=$?
  printf '\n== %s: exit %s\n' "$name" "$rc"      # on a line of its own after pytest's dots
  [ $rc -eq 0 ] || failed=$((failed + 1))
}

step machine $PY -c "
import torch
from common.precision import native_bf16
print('torch', torch.__version__, 'cuda', torch.version.cuda, 'device $DEVICE')
if '$DEVICE' == 'cuda':
    print(torch.cuda.get_device_name(0), 'native bf16:', native_bf16(torch.device('cuda')))
"
step tests $PY -m pytest -q -p no:cacheprovider tests/test_cuda_paths.py tests/test_mixed_precision.py
save_runs() {   # the records and logs so far: a call cut short still brings back what finished
  tar czf "$RESULTS/runs.tar.gz" -C "$WORK" --exclude '*.pt' --exclude '*.npz' --exclude '*.png' runs
}
mkdir -p "$WORK/runs"
step data bash -c "for ds in cifar10 cifar100; do $PY -m common.data.synthetic --dataset \$ds --out $WORK/data \
  --train-per-class 8 --test-per-class 2 || exit; done"
step sla_smoke $PY -m sla_multiexpert.grid --preset smoke --data "$WORK/data" --out "$WORK/runs/sla_multiexpert" \
  --only 'cifar10_r100__*'
save_runs
step thesis_smoke $PY -m thesis_cifar100lt.grid --preset smoke --data "$WORK/data" \
  --out "$WORK/runs/thesis_cifar100lt" --only 'resnet50__*'
save_runs
step benchmark $PY -m sla_multiexpert.benchmark --device "$DEVICE" --compile --batches 10
echo "== $failed step(s) failed; $(find "$WORK/runs" -name record.json | wc -l) runs finished; results in $RESULTS"
exec >&- 2>&-
wait "$tee_pid"                 # the log is whole before the call collects it
exit $((failed > 0))
