import json

import numpy as np
import pytest
import torch

from common.data import BatchLoader, build_augment, load_cifar, to_tensor_images
from common.engine import NonFiniteLossError, TrainConfig, fit, lr_factor, make_step, predict
from common.config import load_config
from common.experiment import run_experiment
from common.losses import build_loss
from common.models import build_model


def _setup(root, n_per_class=None, init_seed=0):
    x, y, _ = load_cifar("cifar10", root, train=True)
    if n_per_class:
        keep = np.concatenate([np.where(y == c)[0][:n_per_class] for c in range(10)])
        x, y = x[keep], y[keep]
    torch.manual_seed(init_seed)
    model = build_model("resnet32", 10)
    loader = BatchLoader(to_tensor_images(x), y, 64, shuffle=True, seed=0)
    step = make_step(build_loss("ce", np.bincount(y)), build_augment("standard"))
    return model, loader, step


def test_two_epochs_learn_and_resume(synthetic_root, tmp_path):
    cfg = TrainConfig(epochs=2, lr=0.02, milestones=[], weight_decay=5e-4, amp=False)   # 0.05: chance on some CPUs
    model, loader, step = _setup(synthetic_root)
    history = fit(model, loader, cfg, tmp_path / "full", step=step, progress=False)
    xt, yt, _ = load_cifar("cifar10", synthetic_root, train=False)
    acc = (predict(model, to_tensor_images(xt), build_augment("none")).argmax(1) == yt).mean()
    assert acc > 0.3, f"two epochs on learnable synthetic data should beat chance (0.1), got {acc}"
    assert len(history) == 2 and (tmp_path / "full" / "last.pt").exists()

    # interrupted in the second epoch, then resumed: same weights as the uninterrupted run
    model_a, loader_a, step_a = _setup(synthetic_root)

    def interrupted(model, images, labels, indices, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        return step_a(model, images, labels, indices, epoch)

    with pytest.raises(KeyboardInterrupt):
        fit(model_a, loader_a, cfg, tmp_path / "resumed", step=interrupted, progress=False)
    model_b, loader_b, step_b = _setup(synthetic_root, init_seed=123)  # fresh weights, overwritten by the checkpoint
    resumed = fit(model_b, loader_b, cfg, tmp_path / "resumed", step=step_b, progress=False)
    assert [r["epoch"] for r in resumed] == [1, 2]
    for (name, a), b in zip(model.state_dict().items(), model_b.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5), name
    lines = (tmp_path / "resumed" / "log.jsonl").read_text().splitlines()
    assert [json.loads(l)["epoch"] for l in lines] == [1, 2]


def test_non_finite_loss_stops_with_message(synthetic_root, tmp_path):
    model, loader, _ = _setup(synthetic_root, n_per_class=10)
    step = lambda m, x, y, i, e: m(build_augment("none")(x)).sum() * float("nan")
    with pytest.raises(NonFiniteLossError, match="epoch 1, batch 1"):
        fit(model, loader, TrainConfig(epochs=1, amp=False), tmp_path, step=step, progress=False)


def test_classifier_only_stage_keeps_backbone_fixed(synthetic_root, tmp_path):
    model, loader, step = _setup(synthetic_root, n_per_class=20)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit(model, loader, TrainConfig(epochs=1, lr=0.1, amp=False), tmp_path, step=step, classifier_only=True, progress=False)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"classifier.weight", "classifier.bias"}


def test_lr_schedules():
    cfg = TrainConfig(epochs=200, warmup_epochs=5, milestones=[160, 180])
    assert [lr_factor(e, cfg) for e in (0, 4, 5, 159, 160, 180)] == pytest.approx([0.2, 1, 1, 1, 0.1, 0.01])
    step = TrainConfig(epochs=90, schedule="step", step_size=30)
    assert [lr_factor(e, step) for e in (29, 30, 60)] == pytest.approx([1, 0.1, 0.01])
    cos = TrainConfig(epochs=10, schedule="cosine")
    assert lr_factor(0, cos) == 1 and lr_factor(5, cos) == pytest.approx(0.5)


def test_experiment_writes_record_and_skips_when_done(synthetic_root, tmp_path):
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(
        "data: {dataset: cifar10, imb_factor: 0.1}\nmodel: {name: resnet32}\nloss: {name: bs}\n"
        "train: {epochs: 1, batch_size: 64, lr: 0.05, milestones: []}\n"
        "presets: {smoke: {train: {epochs: 1}}}\n")
    cfg = load_config(cfg_path, "smoke")
    rec = run_experiment(cfg, tmp_path / "run", synthetic_root, progress=False)
    assert rec["preset"] == "smoke" and rec["epochs"] == 1 and rec["data"].startswith("synthetic")
    assert rec["train_counts"][0] == 120 and rec["train_counts"][-1] == 12
    assert {"accuracy", "ece", "many", "precision", "confusion_matrix"} <= set(rec["metrics"]["test"])
    assert rec["environment"]["torch"] == torch.__version__
    again = run_experiment(cfg, tmp_path / "run", synthetic_root, progress=False)  # skipped
    assert again["finished"] == rec["finished"]


def test_a_lone_last_image_is_not_a_batch():
    """BatchNorm cannot train on one image: a remainder of one is left out of the epoch."""
    labels = np.zeros(33, dtype=np.int64)
    assert [len(y) for _, y, _ in BatchLoader(torch.zeros(33, 1), labels, 16)] == [16, 16]
    assert [len(y) for _, y, _ in BatchLoader(torch.zeros(34, 1), np.zeros(34, dtype=np.int64), 16)] == [16, 16, 2]
