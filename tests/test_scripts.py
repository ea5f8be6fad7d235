"""The shell scripts beside the code: they parse, and what they fetch is what the lock pins."""
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_parses_and_fetches_pydantic_at_the_locked_versions():
    script = ROOT / "scripts" / "gpu_check.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    fetched = subprocess.run(["bash", str(script), "wheels"], env={"PYTHON": "echo", "PATH": "/usr/bin:/bin"},
                             capture_output=True, text=True, check=True).stdout
    lock = (ROOT / "requirements.lock").read_text()
    for name in ("pydantic", "pydantic-core", "annotated-types", "typing-inspection", "typing-extensions"):
        pin = re.search(rf"^{name}==\S+", lock, flags=re.M).group()
        assert f" {pin}" in fetched, pin
    assert "--python-version 3.12" in fetched and "-d .whl" in fetched
