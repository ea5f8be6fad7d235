"""Seed 002's building blocks in common/: re-sampled training sets by config, weighting schemes,
and ensembles computed from members' saved predictions."""
import json

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from common.config import ConfigError, validate_config
from common.derived import average_ensemble, stacked_ensemble
from common.datasets import build_datasets
from common.experiment import run_experiment
from common.runstore import load_predictions, save_predictions, write_record
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


def test_folds_hold_out_a_stratified_part_of_the_training_set(tiny_root):
    whole = build_datasets(_cfg().data, tiny_root)
    held_total = 0
    for fold in range(2):
        ds = build_datasets(_cfg(folds=2, fold=fold).data, tiny_root)
        train_y, (held_x, held_y) = ds["train"][1], ds["tests"]["heldout_fold"]
        assert ds["group_counts"] == whole["group_counts"]                 # the long-tailed profile stays
        assert len(train_y) + len(held_y) == len(whole["train"][1])
        assert not {x.tobytes() for x in ds["train"][0]} & {x.tobytes() for x in held_x}   # no shared image
        per_class = np.bincount(held_y, minlength=10)
        assert all(abs(h - c / 2) <= 0.5 for h, c in zip(per_class, whole["group_counts"]))   # stratified
        assert set(train_y) == set(range(10))         # a class with one image is never held out
        held_total += len(held_y)
    singletons = whole["group_counts"].count(1)
    assert singletons and held_total == len(whole["train"][1]) - singletons   # the folds cover the rest once
    with pytest.raises(ConfigError, match="fold 2 of 2"):
        _cfg(folds=2, fold=2)
    with pytest.raises(ConfigError, match="go together"):
        _cfg(folds=3)


def _fake_run(folder, sets: dict, classes=3):
    """A finished run with the given predictions (name -> (probs, labels)), trained nothing."""
    arrays = {}
    for name, (probs, labels) in sets.items():
        arrays[f"{name}_probs"], arrays[f"{name}_labels"] = probs.astype(np.float32), labels
    folder.mkdir(parents=True)
    save_predictions(folder / "predictions.npz", arrays)
    write_record(folder, {"fake": True}, {}, "now", classes=[str(c) for c in range(classes)],
                 train_counts=[10] * classes)
    return folder


def _noisy_probs(labels, rng, signal):
    logits = rng.normal(size=(len(labels), 3)) + signal * np.eye(3)[labels]
    return np.exp(logits) / np.exp(logits).sum(1, keepdims=True)


def test_learned_stacker_fits_out_of_fold_probabilities_and_never_test_labels(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    oof_y = [rng.integers(0, 3, 60) for _ in range(2)]
    test_y = rng.integers(0, 3, 90)
    members, folds = {}, {}
    for name, signal in (("good", 4.0), ("noise", 0.0)):       # a member that knows the class, one that does not
        members[name] = _fake_run(tmp_path / name, {"test": (_noisy_probs(test_y, rng, signal), test_y)})
        folds[name] = [_fake_run(tmp_path / f"{name}_fold{k}", {"heldout_fold": (_noisy_probs(y, rng, signal), y),
                                                                "test": (_noisy_probs(test_y, rng, signal), test_y)})
                       for k, y in enumerate(oof_y)]
    seen = []
    fit = LogisticRegression.fit
    monkeypatch.setattr(LogisticRegression, "fit", lambda self, x, y: seen.append((x, y)) or fit(self, x, y))
    rec = stacked_ensemble(tmp_path / "stacked", members, folds)
    (x, y), = seen
    np.testing.assert_array_equal(y, np.concatenate(oof_y))           # fitted on the out-of-fold labels only
    assert x.shape == (120, 6)
    assert rec["fitted_on"] == 120 and rec["config"]["folds"] == 2
    assert rec["metrics"]["test"]["accuracy"] > 0.8                  # it learned to trust the informative member
    stacked = load_predictions(tmp_path / "stacked")["test"][0]

    # the same member probabilities with other test labels: the same stacked probabilities
    shuffled = rng.permutation(test_y)
    for name in members:
        probs = load_predictions(members[name])["test"][0]
        save_predictions(members[name] / "predictions.npz", {"test_probs": probs, "test_labels": shuffled})
        write_record(members[name], {"fake": True}, {}, "now", classes=["0", "1", "2"], train_counts=[10] * 3)
    stacked_ensemble(tmp_path / "stacked", members, folds)             # members changed: recomputed
    np.testing.assert_array_equal(load_predictions(tmp_path / "stacked")["test"][0], stacked)
