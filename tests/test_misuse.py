"""Every misuse of the studies' commands stops with one clear line (no traceback) and a non-zero
exit, before any data step or training."""
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from common import study as common_study

REPO = Path(__file__).resolve().parents[1]
STUDIES = ["thesis_cifar100lt", "sla_multiexpert", "ee443_stacking", "efficientnet_cifar10lt"]
# a valid selection of one cheap run per grid, for the --set typo
ONE_RUN = {"thesis_cifar100lt": ["--models", "mobilenet_v2", "--losses", "ce", "--train-sets", "long_tailed"],
           "sla_multiexpert": ["--only", "cifar10_r100__ce"],
           "ee443_stacking": ["--only", "full/efficientnet_b0__ce__bs32_lr0.001"],
           "efficientnet_cifar10lt": ["--only", "baseline"]}


def _stopped(main, argv) -> str:
    """The message of a one-line stop with a non-zero exit."""
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code not in (0, None)
    msg = str(stop.value)
    assert msg.startswith("error: ") and "\n" not in msg and "Traceback" not in msg
    return msg


def test_fetch_weights_help_downloads_nothing_and_offline_is_one_line(monkeypatch, capsys):
    from common.models import PretrainedWeightsUnavailable
    from thesis_cifar100lt import fetch_weights

    def offline(*args, **kwargs):
        raise PretrainedWeightsUnavailable("could not get pretrained weights for resnet50\ncache: ...")

    monkeypatch.setattr(fetch_weights, "build_model", offline)
    with pytest.raises(SystemExit) as stop:
        fetch_weights.main(["--help"])
    assert stop.value.code == 0 and "--models" in capsys.readouterr().out
    msg = _stopped(fetch_weights.main, ["--models", "resnet50"])
    assert "resnet50" in msg and "network" in msg


@pytest.mark.parametrize("study", STUDIES)
def test_run_all_preset_typo_names_the_presets_before_any_data_step(study, tmp_path):
    env = {**os.environ, "PRESET": "smok", "LTREPRO_DATA": str(tmp_path / "data"), "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(REPO / study / "run_all.sh")], env=env, capture_output=True, text=True)
    assert done.returncode != 0
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1 and "unknown preset 'smok'" in lines[0] and "accepted: smoke," in lines[0]
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("study", STUDIES)
def test_report_preset_typo_is_an_argparse_error_and_writes_nothing(study, tmp_path, monkeypatch, capsys):
    report = importlib.import_module(f"{study}.report")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        report.main(["--preset", "cpu_hourr"])
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and "argument --preset: invalid choice: 'cpu_hourr'" in err[0]
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("study", STUDIES)
def test_grid_only_typo_is_one_line(study):
    grid = importlib.import_module(f"{study}.grid")
    msg = _stopped(grid.main, ["--preset", "smoke", "--list", "--only", "typo*"])
    assert "--only" in msg and "'typo*'" in msg


@pytest.mark.parametrize("study", STUDIES)
def test_grid_set_typo_stops_before_training(study, tmp_path, monkeypatch):
    grid = importlib.import_module(f"{study}.grid")
    monkeypatch.setattr(common_study, "run_jobs", lambda *a, **k: pytest.fail("trained despite a --set typo"))
    with pytest.raises(SystemExit) as stop:
        grid.main(["--preset", "smoke", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "runs"),
                   *ONE_RUN[study], "--set", "train.epoch=3"])
    msg = str(stop.value)
    assert stop.value.code not in (0, None) and "Traceback" not in msg
    assert "train.epoch: unknown key (did you mean 'epochs'?)" in msg and "\n" not in msg
    assert not (tmp_path / "runs").exists()
