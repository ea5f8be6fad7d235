"""The flat single-run command (common.train): flags over the validated config, per-class
summary, confusion matrix, eval-only on the kept weights, typos stopped before training."""
import json
import re

import pytest
import yaml

from common import train as flat
from common.config import ConfigError, config_record, validate_config
from common.report import per_class_summary


def _train(argv, capsys):
    flat.main(argv)
    return capsys.readouterr().out


@pytest.fixture(scope="module")
def flat_run(synthetic_root, tmp_path_factory):
    """One real run of the documented command shape (2 epochs on synthetic CIFAR-10-LT, imbalance 10)."""
    out = tmp_path_factory.mktemp("flat") / "run"
    flat.main(["--model", "resnet32", "--loss", "bs", "--dataset", "cifar10", "--imb-factor", "0.1", "--epochs", "2",
               "--seed", "3", "--batch-size", "32", "--data", str(synthetic_root), "--out", str(out), "--no-progress"])
    return out


def test_flat_run_saves_config_weights_and_confusion(flat_run):
    record = json.loads((flat_run / "record.json").read_text())
    assert yaml.safe_load((flat_run / "config.yaml").read_text()) == record["config"]
    assert record["config"]["loss"]["name"] == "bs" and record["config"]["data"]["imb_factor"] == 0.1
    assert record["config"]["train"]["epochs"] == 2 and record["config"]["train"]["seed"] == 3
    assert record["config"]["train"]["warmup_epochs"] == 0          # nothing hidden
    assert (flat_run / "weights.pt").exists() and (flat_run / "confusion_test.png").stat().st_size > 1000


def test_per_class_summary_lists_every_class_recall(flat_run):
    record = json.loads((flat_run / "record.json").read_text())
    text = per_class_summary(record)
    m = record["metrics"]["test"]
    for c, name in enumerate(record["classes"]):
        line = next(x for x in text.splitlines() if x.split()[:1] == [name])
        assert f"{100 * m['recall'][c]:.2f}%" in line and str(record["train_counts"][c]) in line.split()


def test_eval_only_reproduces_the_recorded_metrics(flat_run, synthetic_root, capsys):
    out = _train(["--eval", str(flat_run), "--data", str(synthetic_root)], capsys)
    evaluated = json.loads((flat_run / "eval" / "weights" / "metrics.json").read_text())
    recorded = json.loads((flat_run / "record.json").read_text())
    assert evaluated["metrics"]["test"]["accuracy"] == recorded["metrics"]["test"]["accuracy"]
    assert evaluated["metrics"]["test"]["confusion_matrix"] == recorded["metrics"]["test"]["confusion_matrix"]
    assert (flat_run / "eval" / "weights" / "confusion_test.png").exists() and "recall" in out
    assert "when trained" in out


def test_flags_and_yaml_give_the_same_config():
    args = flat.build_parser().parse_args(["--model", "resnet32", "--dataset", "cifar10", "--imb-factor", "0.01",
                                           "--loss", "focal", "--loss-gamma", "2", "--milestones", "3", "4",
                                           "--no-amp", "--lr-gamma", "0.5", "--set", "train.lr=0.05"])
    from_flags = flat.config_from_args(args)
    from_yaml = validate_config({"data": {"dataset": "cifar10", "imb_factor": 0.01},
                                 "model": {"name": "resnet32"}, "loss": {"name": "focal", "gamma": 2},
                                 "train": {"milestones": [3, 4], "amp": False, "gamma": 0.5, "lr": 0.05,
                                           "keep_weights": True}})
    assert config_record(from_flags) == config_record(from_yaml)


def test_every_config_key_is_a_flag_listed_in_help():
    flags = flat.config_flags()
    covered = {(section, key) for section, key, _ in flags.values()}
    for section, schema in flat.SECTIONS.items():
        for key in schema.model_fields:
            assert (section, key) in covered, f"{section}.{key} has no flag"
    listed = {s for action in flat.build_parser()._actions for s in action.option_strings}
    assert set(flags) <= listed
    text = flat.build_parser().format_help()
    for flag in flags:
        assert re.search(rf"{flag}\b(?!-)", text), flag


@pytest.mark.parametrize("argv, expected", [
    (["--epoch", "2"], "did you mean '--epochs'"),
    (["--set", "train.epoch=2"], "did you mean 'epochs'"),
    (["--imb-factor", "50"], "imbalance ratio 50 is imb_factor 0.02"),
    (["--loss", "foca"], "did you mean 'focal'"),
    (["--loss", "ce", "--loss-gamma", "2"], "--loss-gamma: unknown key"),
])
def test_typos_stop_before_training(argv, expected, monkeypatch, capsys):
    monkeypatch.setattr(flat, "run_experiment", lambda *a, **k: pytest.fail("trained despite a typo"))
    with pytest.raises(SystemExit) as exit_:
        flat.main(["--model", "resnet32", "--dataset", "cifar10", *argv])
    message = str(exit_.value.code) if exit_.value.code not in (None, 0, 2) else capsys.readouterr().err
    assert exit_.value.code not in (None, 0) and expected in message


def test_eval_of_a_checkpoint_file_writes_beside_its_name(flat_run, synthetic_root, capsys):
    _train(["--eval", str(flat_run / "weights.pt"), "--data", str(synthetic_root)], capsys)
    assert json.loads((flat_run / "eval" / "weights" / "metrics.json").read_text())["checkpoint"].endswith("weights.pt")


def test_none_unsets_and_errors_name_their_flag():
    parse = flat.build_parser().parse_args
    cfg = flat.config_from_args(parse(["--model", "resnet32", "--dataset", "cifar10", "--imb-factor", "None",
                                       "--weights", "null", "--sampler", "none"]))
    assert cfg.data.imb_factor is None and cfg.model.weights is None and cfg.data.sampler is None
    with pytest.raises(ConfigError) as err:
        flat.config_from_args(parse(["--model", "resnet32", "--dataset", "cifar10", "--lws"]))
    assert str(err.value) == "invalid config: model.lws needs model.init_from (the run whose weights are loaded)"


def test_eval_of_a_missing_folder_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        flat.main(["--eval", str(tmp_path / "nope")])
    assert "no such run folder" in str(exit_.value.code) and "\n" not in str(exit_.value.code)
