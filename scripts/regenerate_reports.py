"""Regenerate every committed table and figure from the committed run records.

    python scripts/regenerate_reports.py            # rewrite results/<study>/<preset>/ in place
    python scripts/regenerate_reports.py --check    # regenerate in a copy and list what differs (exit 1 if any)

A preset is regenerated when its folder exists under ``results/<study>/``; each report runs as
its own process, as a user would run it (``python -m <study>.report --preset P``).
"""
from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STUDIES = ("efficientnet_cifar10lt", "thesis_cifar100lt", "ee443_stacking", "sla_multiexpert")


def reported_presets(results: Path, study: str) -> list[str]:
    folder = results / study
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name != "runs") if folder.is_dir() else []


def regenerate(root: Path) -> None:
    """Every study's report for every reported preset, with ``root`` as the working directory
    (the reports read and write ``results/`` relative to it)."""
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "MPLBACKEND": "Agg"}
    for study in STUDIES:
        for preset in reported_presets(root / "results", study):
            print(f"{study} --preset {preset}", flush=True)
            subprocess.run([sys.executable, "-m", f"{study}.report", "--preset", preset], cwd=root, env=env,
                           check=True, stdout=subprocess.DEVNULL)


def differences(a: Path, b: Path, prefix: str = "") -> list[str]:
    cmp = filecmp.dircmp(a, b)
    out = [f"{prefix}{name}: only in the committed results" for name in cmp.left_only]
    out += [f"{prefix}{name}: new" for name in cmp.right_only]
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    out += [f"{prefix}{name}: differs" for name in mismatch + errors]
    for sub in cmp.common_dirs:
        out += differences(a / sub, b / sub, f"{prefix}{sub}/")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="regenerate in a copy and diff; change nothing")
    args = parser.parse_args(argv)
    if not args.check:
        regenerate(REPO)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(REPO / "results", Path(tmp) / "results")
        regenerate(Path(tmp))
        found = differences(REPO / "results", Path(tmp) / "results", "results/")
    print("\n".join(found) if found else "every table and figure regenerates byte-identical")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
