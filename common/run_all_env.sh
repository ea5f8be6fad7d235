# Sourced by every study's run_all.sh: strict mode, repository root, python, default preset.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python}
if [ -z "${PRESET:-}" ]; then
  PRESET=$($PY -c "import torch; print('paper' if torch.cuda.is_available() else 'smoke')")
  echo "PRESET not set: using $PRESET (paper with CUDA, smoke without)"
fi
# check_preset CONFIG...: stop unless every CONFIG defines $PRESET (before any data is fetched)
check_preset() { $PY -c 'import sys; from common.config import main; main(sys.argv[1:])' "$PRESET" "$@" || exit 2; }
