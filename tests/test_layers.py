"""The import layers of .importlinter hold: nothing imports a layer above it, nothing imports in a circle."""
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_import_layer_contract_is_kept():
    command = shutil.which("lint-imports")
    assert command, "import-linter is not installed: pip install -r requirements.lock"
    done = subprocess.run([command, "--config", str(REPO / ".importlinter"), "--no-cache"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "1 kept, 0 broken" in done.stdout, done.stdout + done.stderr
