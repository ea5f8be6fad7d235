"""Typed configs: every bad key, type or name fails before data is read, naming key, source and fix."""
import subprocess
import sys

import pytest

from common import experiment
from common.config import ConfigError, load_config, parse_overrides, preset_names, validate_config
from sla_multiexpert.grid import CONFIGS as SLA_CONFIGS
from thesis_cifar100lt import grid as thesis_grid

SLA_METHOD = "sla_multiexpert/configs/method.yaml"
THESIS = "thesis_cifar100lt/configs/base.yaml"


def _error(**kwargs) -> str:
    with pytest.raises(ConfigError) as err:
        load_config(**kwargs)
    return str(err.value)


def test_set_typo_names_key_source_and_suggestion():
    msg = _error(path=SLA_METHOD, preset="smoke", cli=parse_overrides(["train.epoch=5"]))
    assert "--set: train.epoch: unknown key (did you mean 'epochs'?)" in msg
    assert "warmup_epochs" in msg        # the accepted keys of the section are listed


def test_file_and_preset_typos_name_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {dataset: cifar10, imb_fctor: 0.1}\nmodel: {name: resnet32}\n"
                    "presets: {smoke: {train: {batchsize: 8}}}\n")
    msg = _error(path=path, preset=None)
    assert f"{path}: data.imb_fctor: unknown key (did you mean 'imb_factor'?)" in msg
    # an unused preset is checked too, and named as the source
    assert f"{path} (presets.smoke): train.batchsize: unknown key (did you mean 'batch_size'?)" in msg


@pytest.mark.parametrize("override, expected", [
    ({"model": {"name": "resnt32"}}, "model.name: unknown model 'resnt32' (did you mean 'resnet32'?); accepted:"),
    ({"loss": {"name": "focall"}}, "loss.name: unknown loss 'focall' (did you mean 'focal'?)"),
    ({"train": {"augment": "stong"}}, "train.augment: unknown augmentation 'stong' (did you mean 'strong'?)"),
    ({"train": {"epochs": 0}}, "train.epochs: Input should be greater than 0"),
    ({"train": {"epochs": -3}}, "train.epochs: Input should be greater than 0"),
    ({"train": {"epochs": "five"}}, "train.epochs: Input should be a valid integer"),
    ({"train": {"lr": [0.1]}}, "train.lr: Input should be a valid number"),
    ({"data": {"dataset": "cifar1000"}}, "data.dataset: unknown dataset 'cifar1000' (did you mean 'cifar100'?)"),
    ({"data": {"imb_factor": 100}}, "data.imb_factor: imb_factor is n_min / n_max, in (0, 1]; got 100 (imbalance ratio 100 is imb_factor 0.01)"),
    ({"eval": {"groups": ["thrids"]}}, "eval.groups.0: unknown class grouping 'thrids' (did you mean 'thirds'?)"),
    ({"loss": {"name": "focal", "gama": 2}}, "loss.gama: unknown key (did you mean 'gamma'?)"),
    ({"loss": {"name": "focal", "gamma": "big"}}, "loss.gamma: Input should be a valid number"),
    ({"method": {"weighting": "slaa"}}, "method.weighting: unknown stage-2 weighting 'slaa' (did you mean 'sla'?)"),
    ({"method": {"augments": ["weak", "medium", "strnog"]}}, "method.augments.2: unknown augmentation 'strnog'"),
    ({"method": {"name": "sla_multiexprt"}}, "method.name: no method 'sla_multiexprt' is registered"),
])
def test_bad_values_are_named(override, expected):
    assert expected in _error(path=SLA_METHOD, preset="smoke", overrides=override)


def test_unknown_preset_lists_the_files_presets():
    msg = _error(path=SLA_METHOD, preset="cpu_hourr")
    assert "unknown preset 'cpu_hourr' (did you mean 'cpu_hour'?); accepted: smoke, cpu_hour, quick, paper" in msg


def test_every_problem_is_listed_at_once():
    msg = _error(path=SLA_METHOD, cli={"train": {"epoch": 5, "optimiser": "sgd"}, "data": {"ratio": 2}})
    assert all(k in msg for k in ("train.epoch", "train.optimiser", "data.ratio"))


def test_cross_section_rules():
    with pytest.raises(ConfigError, match="select_best needs a validation set"):
        validate_config({"data": {"dataset": "cifar10"}, "model": {"name": "resnet32"}, "train": {"select_best": True}})
    with pytest.raises(ConfigError, match="classifier_prior initialises a fresh classifier"):
        validate_config({"data": {"dataset": "cifar10"}, "model": {"name": "resnet32", "init_from": "stage1",
                                                                   "classifier_prior": 0.1}})
    with pytest.raises(ConfigError, match="split 'thesis' needs imb_factor"):
        validate_config({"data": {"dataset": "cifar100", "split": "thesis"}, "model": {"name": "resnet32"}})


def test_defaults_are_filled_and_resolved():
    cfg = validate_config({"data": {"dataset": "cifar10"}, "model": {"name": "resnet32"}})
    assert cfg.train.epochs == 200 and cfg.loss.name == "ce" and cfg.eval.groups == ["shot"]
    assert cfg.train.normalize == "cifar10"          # the dataset's own, written out in the record


def test_cli_presets_come_from_the_configs():
    assert preset_names(*SLA_CONFIGS) == ["smoke", "cpu_hour", "quick", "paper"]
    assert preset_names(THESIS) == ["smoke", "quick", "paper"]
    with pytest.raises(SystemExit) as stop:
        thesis_grid.main(["--preset", "cpu_hour", "--data", "x"])   # the thesis has no cpu_hour preset
    assert stop.value.code == 2


def test_run_all_preset_check():
    from common.config import main
    main(["smoke", THESIS])                           # defined: returns quietly
    with pytest.raises(SystemExit, match="unknown preset 'smok' \\(did you mean 'smoke'\\?\\)"):
        main(["smok", THESIS])
    with pytest.raises(SystemExit, match="accepted: smoke, cpu_hour, quick, paper"):
        main(["cpu", *map(str, SLA_CONFIGS)])


def test_experiment_cli_runs_a_preset_the_file_defines(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr(experiment, "run_experiment", lambda cfg, *a, **k: seen.setdefault("cfg", cfg) and
                        {"metrics": {}})
    experiment.main([SLA_METHOD, "--preset", "cpu_hour", "--out", str(tmp_path)])
    assert seen["cfg"].preset == "cpu_hour" and seen["cfg"].train.epochs == 12


def test_experiment_cli_typo_exits_before_training(tmp_path):
    """The acceptance command: non-zero exit, one message naming train.epoch and train.epochs, no run folder."""
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "common.experiment", SLA_METHOD, "--preset", "smoke",
                           "--out", str(out), "--data", str(tmp_path / "no_data"), "--set", "train.epoch=5"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "train.epoch: unknown key (did you mean 'epochs'?)" in done.stderr
    assert "Traceback" not in done.stderr and not out.exists()


def test_set_syntax_errors():
    for bad in (["train.epochs"], ["=5"], ["train..epochs=5"]):
        with pytest.raises(ConfigError, match="SECTION.KEY=VALUE"):
            parse_overrides(bad)
    assert parse_overrides(["train.epochs=5", "model.pretrained=false"]) == {"train": {"epochs": 5},
                                                                            "model": {"pretrained": False}}


def test_a_config_is_reread_when_the_file_it_extends_changes(tmp_path):
    import os

    parent, child = tmp_path / "base.yaml", tmp_path / "run.yaml"
    parent.write_text("data: {dataset: cifar10}\nmodel: {name: resnet32}\ntrain: {epochs: 3}\n"
                      "presets: {smoke: {train: {epochs: 1}}}\n")
    child.write_text("extends: base.yaml\nloss: {name: ce}\n")
    assert load_config(child, "smoke").train.epochs == 1
    parent.write_text(parent.read_text().replace("epochs: 1", "epochs: 2"))
    os.utime(parent, ns=(parent.stat().st_atime_ns, parent.stat().st_mtime_ns + 10**9))   # a later version
    assert load_config(child, "smoke").train.epochs == 2
    parent.write_text(parent.read_text().replace("epochs: 3", "epoch: 3"))              # a typo in the parent
    os.utime(parent, ns=(parent.stat().st_atime_ns, parent.stat().st_mtime_ns + 2 * 10**9))
    with pytest.raises(ConfigError, match="epoch"):
        load_config(child, "smoke")


def test_extends_in_a_circle_or_not_a_file_name_is_a_config_error(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\nmodel: {name: resnet32}\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\ndata: {dataset: cifar10}\n")
    with pytest.raises(ConfigError, match="circle"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("extends: [a.yaml]\n")
    with pytest.raises(ConfigError, match="extends names one config file"):
        load_config(tmp_path / "c.yaml")
