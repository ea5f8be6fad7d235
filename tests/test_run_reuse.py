"""Runs that start from another run's kept weights, classifier-only stages (cached features or
not), and the test predictions every finished run keeps."""
import json

import numpy as np
import pytest
import torch

from common.config import validate_config
from common.data import BatchLoader, build_augment, load_cifar, to_tensor_images
from common.engine import cached_features, feature_step, load_checkpoint, make_step
from common.experiment import run_experiment
from common.grid import Job, run_jobs
from common.runstore import ParentNotFinishedError, StaleRunError, finished_record, load_predictions
from common.losses import build_loss
from common.models import build_model


def _parent(**train):
    return validate_config({"data": {"dataset": "cifar10", "imb_factor": 0.1}, "model": {"name": "resnet32"},
                            "train": {"epochs": 1, "batch_size": 64, "lr": 0.05, "milestones": [], "amp": False,
                                      "keep_weights": True, **train}})


def _child(loss="wce", augment="none", keep_weights=False):
    return validate_config({"data": {"dataset": "cifar10", "imb_factor": 0.1},
                            "model": {"name": "resnet32", "init_from": "stage1"}, "loss": {"name": loss},
                            "train": {"epochs": 1, "batch_size": 64, "lr": 0.1, "milestones": [], "amp": False,
                                      "classifier_only": True, "augment": augment, "keep_weights": keep_weights}})


def test_stage_two_loads_stage_one_and_leaves_the_backbone_bit_identical(tiny_root, tmp_path):
    parent = run_experiment(_parent(), tmp_path / "stage1", tiny_root, progress=False)
    start = load_checkpoint(tmp_path / "stage1" / "weights.pt")["model"]
    for augment in ("none", "standard"):        # cached features, and per-batch features without a graph
        rec = run_experiment(_child(augment=augment, keep_weights=True), tmp_path / augment, tiny_root, progress=False)
        assert rec["parent"] == {"run": str(tmp_path / "stage1"), "run_id": parent["run_id"],
                                 "config_hash": parent["config_hash"]}
        after = load_checkpoint(tmp_path / augment / "weights.pt")["model"]
        changed = {k for k in start if not torch.equal(start[k], after[k])}
        assert changed == {"classifier.weight", "classifier.bias"}, augment   # BatchNorm statistics included


def test_two_stage_two_rows_reuse_one_stage_one_run(tiny_root, tmp_path, capsys):
    jobs = [Job("stage1", _parent(), tmp_path / "stage1"), Job("wce", _child("wce"), tmp_path / "wce"),
            Job("bs", _child("bs"), tmp_path / "bs")]
    run_jobs(jobs, tiny_root, progress=False)
    first = json.loads((tmp_path / "stage1" / "record.json").read_text())["run_id"]
    run_jobs([Job("cb", _child("cb"), tmp_path / "cb"), *jobs], tiny_root, progress=False)
    assert json.loads((tmp_path / "stage1" / "record.json").read_text())["run_id"] == first   # trained once
    out = capsys.readouterr().out
    assert out.count("skip") == 3 and "its parent run has not finished" not in out


def test_a_child_waits_for_its_parent_and_is_stale_when_the_parent_is_retrained(tiny_root, tmp_path, capsys):
    with pytest.raises(ParentNotFinishedError, match="has not finished: run it first"):
        run_experiment(_child(), tmp_path / "wce", tiny_root, progress=False)
    # listed before its parent: deferred, then run once the parent finished
    records = run_jobs([Job("wce", _child(), tmp_path / "wce"), Job("stage1", _parent(), tmp_path / "stage1")],
                       tiny_root, progress=False)
    assert "its parent run has not finished" in capsys.readouterr().out and set(records) == {"wce", "stage1"}
    run_experiment(_parent(), tmp_path / "stage1", tiny_root, progress=False, rerun_stale=True)  # no-op: same config
    (tmp_path / "stage1" / "record.json").unlink()
    run_experiment(_parent(), tmp_path / "stage1", tiny_root, progress=False)                    # re-trained
    with pytest.raises(StaleRunError, match="parent run .*stage1 was re-trained"):
        finished_record(tmp_path / "wce", _child())


def test_parent_without_kept_weights_is_named(tiny_root, tmp_path):
    cfg = _parent()
    cfg.train.keep_weights = False
    run_experiment(cfg, tmp_path / "stage1", tiny_root, progress=False)
    with pytest.raises(ParentNotFinishedError, match="without keeping its weights"):
        run_experiment(_child(), tmp_path / "wce", tiny_root, progress=False)


def test_cached_features_give_the_classifier_the_same_gradients(tiny_root):
    x, y, _ = load_cifar("cifar10", tiny_root, train=True)
    images, labels = to_tensor_images(x[:64]), torch.as_tensor(y[:64])
    torch.manual_seed(0)
    model = build_model("resnet32", 10).eval()
    loss = build_loss("bs", np.bincount(y, minlength=10))
    plain = build_augment("none")

    def classifier_grads(step, batch):
        model.zero_grad()
        step(model, batch, labels, None, 0).backward()
        assert all(p.grad is None for n, p in model.named_parameters() if not n.startswith("classifier"))
        return [p.grad.clone() for p in model.classifier.parameters()]

    per_batch = classifier_grads(make_step(loss, plain, frozen_backbone=True), images)
    features = cached_features(model, images, plain, amp=False)
    cached = classifier_grads(feature_step(loss), features)
    for a, b in zip(per_batch, cached):
        assert torch.allclose(a, b, atol=1e-6)
    # the cached loader yields the same batches, in the same order, as the image loader
    a = BatchLoader(images, labels, 16, shuffle=True, seed=3)
    b = BatchLoader(features, labels, 16, shuffle=True, seed=3)
    for (_, ya, ia), (_, yb, ib) in zip(a, b):
        assert torch.equal(ia, ib) and torch.equal(ya, yb)


def test_finished_run_keeps_its_test_predictions(tiny_root, tmp_path):
    rec = run_experiment(_parent(keep_weights=False), tmp_path / "run", tiny_root, progress=False)
    probs, labels = load_predictions(tmp_path / "run")["test"]
    assert probs.dtype == np.float32 and probs.shape == (len(labels), 10)
    assert np.allclose(probs.sum(1), 1, atol=1e-5)
    assert float((probs.argmax(1) == labels).mean()) == rec["metrics"]["test"]["accuracy"]
