"""Seed 002's building blocks in common/: re-sampled training sets by config, weighting schemes,
and ensembles computed from members' saved predictions."""
import json

import numpy as np
import pytest
import torch

from common.config import ConfigError, validate_config
from common.derived import average_ensemble
from common.experiment import build_datasets, load_predictions, run_experiment
from common.losses import build_loss, class_weights


def _cfg(**data):
    return validate_config({"data": {"dataset": "cifar10", "imb_factor": 0.1, **data}, "model": {"name": "resnet32"},
                            "train": {"epochs": 1, "batch_size": 64, "lr": 0.05, "milestones": [], "amp": False}})


def test_artificial_balancing_and_bags_by_config(tiny_root):
    lt = build_datasets(_cfg().data, tiny_root)
    assert lt["train_counts"] == [16, 12, 9, 7, 5, 4, 3, 2, 2, 1]
    balanced = build_datasets(_cfg(balance_threshold=6).data, tiny_root)
    assert balanced["train_counts"] == [6] * 10 and balanced["group_counts"] == lt["train_counts"]
    bags = [build_datasets(_cfg(bag_threshold=8, bag_index=i).data, tiny_root) for i in range(2)]  # 16 // 8 = 2
    median = np.median(lt["train_counts"])
    for c, n in enumerate(lt["train_counts"]):
        shares = [b["train_counts"][c] for b in bags]
        assert shares == [n, n] if n <= median else sum(shares) == n      # minority copied, majority dealt
    with pytest.raises(ConfigError, match="gives 2 learners"):
        build_datasets(_cfg(bag_threshold=8, bag_index=2).data, tiny_root)
    with pytest.raises(ConfigError, match="go together"):
        _cfg(bag_threshold=8)


def test_weighted_ce_schemes_follow_class_weights():
    counts = [100, 10, 1]
    for scheme in ("ins", "isns", "ens"):
        loss = build_loss("wce", counts, scheme=scheme)
        assert torch.allclose(loss.weight, class_weights(counts, scheme))
    assert class_weights(counts, "isns")[2] / class_weights(counts, "isns")[0] == pytest.approx(10.0)


def test_ensemble_of_one_member_is_that_member_and_members_are_reused(tiny_root, tmp_path, capsys):
    a = run_experiment(_cfg(), tmp_path / "a", tiny_root, progress=False)
    solo = average_ensemble(tmp_path / "solo", {"a": tmp_path / "a"})
    assert solo["metrics"]["test"]["accuracy"] == a["metrics"]["test"]["accuracy"]
    np.testing.assert_array_equal(load_predictions(tmp_path / "solo")["test"][0], load_predictions(tmp_path / "a")["test"][0])

    cfg_b = _cfg()
    cfg_b.train.seed = 1
    run_experiment(cfg_b, tmp_path / "b", tiny_root, progress=False)
    pair = average_ensemble(tmp_path / "pair", {"a": tmp_path / "a", "b": tmp_path / "b"})
    mean = (load_predictions(tmp_path / "a")["test"][0] + load_predictions(tmp_path / "b")["test"][0]) / 2
    np.testing.assert_allclose(load_predictions(tmp_path / "pair")["test"][0], mean, atol=1e-6)
    assert set(pair["sources"]) == {"a", "b"}
    capsys.readouterr()
    again = average_ensemble(tmp_path / "pair", {"a": tmp_path / "a", "b": tmp_path / "b"})   # nothing changed
    assert again["run_id"] == pair["run_id"] and "skip" in capsys.readouterr().out
    (tmp_path / "b" / "record.json").unlink()                 # a member is re-trained: the ensemble follows
    run_experiment(cfg_b, tmp_path / "b", tiny_root, progress=False)
    assert average_ensemble(tmp_path / "pair", {"a": tmp_path / "a", "b": tmp_path / "b"})["run_id"] != pair["run_id"]
    assert json.loads((tmp_path / "a" / "record.json").read_text())["run_id"] == a["run_id"]   # never retrained
