"""bf16 autocast and channels_last on a CPU (the path CUDA runs too): runs train in them where
the CPU has native bf16, stay in fp32 where it has not, record which, and resume in the
precision they started in."""
import math

import numpy as np
import pytest
import torch

from common import precision
from common.config import TrainConfig
from common.engine import CheckpointError, fit, load_checkpoint, make_step
from common.experiment import run_experiment
from common.runstore import load_predictions

BF16 = {"bf16": True, "channels_last": True, "compiled": False}
FP32 = {"bf16": False, "channels_last": True, "compiled": False}   # channels_last is a layout, kept in fp32


@pytest.fixture
def cpu_bf16(monkeypatch):
    """Pretend the CPU does / does not run bf16 natively (the code path is the same either way)."""
    def set_native(native: bool):
        monkeypatch.setattr(precision, "cpu_runs_bf16_natively", lambda: native)
        monkeypatch.setattr(precision, "_said", set())
    return set_native


def _finite(rec):
    assert all(math.isfinite(row["train_loss"]) for row in rec["history"])
    for metrics in rec["metrics"].values():
        assert 0 <= metrics["accuracy"] <= 1 and math.isfinite(metrics["ece"])


def test_cpu_bf16_run_trains_records_and_predicts_in_fp32(tiny_root, tmp_path, cpu_bf16, monkeypatch):
    from sla_multiexpert.grid import run_config, runs

    cpu_bf16(True)
    seen = []
    real_autocast = torch.autocast

    def spy(device_type, dtype=None, enabled=True, **kw):
        seen.append((device_type, dtype, enabled))
        return real_autocast(device_type, dtype=dtype, enabled=enabled, **kw)

    monkeypatch.setattr(torch, "autocast", spy)
    run = next(r for r in runs("smoke") if r.name == "cifar10_r100__ce")
    cfg = run_config(run, "smoke", {"train": {"keep_weights": True}})
    torch.manual_seed(0)
    rec = run_experiment(cfg, tmp_path / "run", tiny_root, progress=False)
    _finite(rec)
    assert rec["numerics"] == BF16
    assert ("cpu", torch.bfloat16, True) in seen          # the training step ran under bf16 autocast
    probs, _ = load_predictions(tmp_path / "run")["test"]
    assert probs.dtype == np.float32 and np.allclose(probs.sum(1), 1, atol=1e-5)
    weights = load_checkpoint(tmp_path / "run" / "weights.pt")["model"]
    assert all(w.dtype == torch.float32 for w in weights.values() if w.is_floating_point())   # master weights fp32


def test_cpu_without_native_bf16_stays_fp32_and_says_so_once(tiny_root, tmp_path, cpu_bf16, capsys):
    from sla_multiexpert.grid import run_config, runs

    cpu_bf16(False)
    run = next(r for r in runs("smoke") if r.name == "cifar10_r100__ce")
    cfg = run_config(run, "smoke")
    assert precision.choose_numerics(torch.device("cpu"), cfg.train).record() == FP32
    rec = run_experiment(cfg, tmp_path / "run", tiny_root, progress=False)
    assert rec["numerics"] == FP32
    assert capsys.readouterr().err.count("no native bf16") == 1


def _tiny_fit_setup(seed=0):
    from common.data import build_augment
    from common.losses import build_loss
    from common.models import build_model

    torch.manual_seed(seed)
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    labels = np.arange(64) % 10
    model = build_model("resnet32", 10)
    step = make_step(build_loss("ce", np.bincount(labels)), build_augment("standard"))
    return model, images, labels, step


def _loader(images, labels):
    from common.data import BatchLoader
    return BatchLoader(images, labels, 32, shuffle=True, seed=0)


def _stopped_after_one_epoch(model, images, labels, step, cfg, out_dir):
    """``fit`` interrupted when its second epoch starts: ``out_dir/last.pt`` holds epoch 1."""
    def interrupted(m, x, y, i, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        return step(m, x, y, i, epoch)

    with pytest.raises(KeyboardInterrupt):
        fit(model, _loader(images, labels), cfg, out_dir, step=interrupted, progress=False)


def test_weights_change_and_resume_keeps_the_checkpoints_precision(tmp_path, cpu_bf16):
    cfg = TrainConfig(epochs=2, lr=0.05, milestones=[])
    cpu_bf16(True)
    model, images, labels, step = _tiny_fit_setup()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _stopped_after_one_epoch(model, images, labels, step, cfg, tmp_path)
    assert load_checkpoint(tmp_path / "last.pt")["numerics"] == BF16
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())

    cpu_bf16(False)                     # the machine changed: the run still goes on in bf16
    model_b, images, labels, step_b = _tiny_fit_setup(seed=1)
    history = fit(model_b, _loader(images, labels), cfg, tmp_path, step=step_b, progress=False)
    assert [row["epoch"] for row in history] == [1, 2]
    assert load_checkpoint(tmp_path / "last.pt")["numerics"] == BF16
    assert model_b.conv1.weight.is_contiguous(memory_format=torch.channels_last)

    with pytest.raises(CheckpointError, match="resumes in the numerics it started in"):
        fit(_tiny_fit_setup()[0], _loader(images, labels), TrainConfig(epochs=3, lr=0.05, milestones=[]), tmp_path,
            step=step_b, progress=False, numerics=precision.Numerics(**FP32), run_config=cfg.model_dump(mode="json"))


def test_fp32_checkpoint_resumes_in_fp32_on_a_bf16_cpu(tmp_path, cpu_bf16):
    cfg = TrainConfig(epochs=2, lr=0.05, milestones=[])
    cpu_bf16(False)
    _stopped_after_one_epoch(*_tiny_fit_setup(), cfg, tmp_path)
    cpu_bf16(True)
    model_b, images, labels, step_b = _tiny_fit_setup(seed=1)
    fit(model_b, _loader(images, labels), cfg, tmp_path, step=step_b, progress=False)
    assert load_checkpoint(tmp_path / "last.pt")["numerics"] == FP32
    assert model_b.conv1.weight.is_contiguous(memory_format=torch.channels_last)


def test_checkpoint_of_an_older_schema_resumes(tmp_path):
    """A key added to the schema after a run started (with its default) does not refuse its last.pt."""
    from common.config import config_record, load_config
    from common.engine import _check_same_run

    cfg = load_config("sla_multiexpert/configs/ce_baseline.yaml", "smoke", {"data": {"dataset": "cifar10"}})
    now = config_record(cfg)
    older = {**now, "train": {k: v for k, v in now["train"].items() if k != "compile"}}
    _check_same_run({"run_config": older}, now, tmp_path / "last.pt")
    changed = {**now, "train": {**now["train"], "lr": 0.5}}
    with pytest.raises(CheckpointError, match="another config"):
        _check_same_run({"run_config": changed}, now, tmp_path / "last.pt")


def test_sla_run_under_cpu_bf16(tiny_root, tmp_path, cpu_bf16):
    from sla_multiexpert.grid import run_config, runs
    from sla_multiexpert.train import build_step

    cpu_bf16(True)
    run = next(r for r in runs("smoke") if r.name == "cifar100_r100__ours")
    cfg = run_config(run, "smoke", {"data": {"classes": 20}})
    rec = run_experiment(cfg, tmp_path / run.name, tiny_root, build_step=build_step, progress=False)
    _finite(rec)
    assert len(rec["history"]) == 2 and rec["numerics"] == BF16   # both stages, under bf16 autocast


def test_thesis_run_under_cpu_bf16(tiny_root, tmp_path, cpu_bf16):
    from thesis_cifar100lt import grid

    cpu_bf16(True)
    overrides = dict(grid.grid(["mobilenet_v2"], ["ldam"], ["long_tailed"]))["mobilenet_v2__ldam__long_tailed"]
    rec = run_experiment(grid.config("smoke", overrides), tmp_path / "run", tiny_root, progress=False)
    _finite(rec)
    assert rec["numerics"] == BF16


def test_compile_is_regional_and_keeps_the_state_dict(monkeypatch):
    """train.compile compiles each top-level block (any forward path runs compiled code); the
    compilation itself (about a minute on a CPU) is left to the benchmark."""
    from common.models import build_model

    compiled = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *a, **kw: compiled.append(type(self).__name__))
    model = build_model("resnet32", 10)
    keys = list(model.state_dict())
    precision.apply_numerics(model, precision.Numerics(bf16=False, channels_last=False, compiled=True))
    assert "BasicBlock" in compiled and "Conv2d" in compiled and "Sequential" not in compiled
    assert list(model.state_dict()) == keys


def test_a_checkpoint_from_before_numerics_were_kept_resumes_as_it_ran(tmp_path, cpu_bf16):
    """Before this rule a CPU run trained in fp32: its last.pt (no 'numerics') goes on in fp32."""
    cfg = TrainConfig(epochs=2, lr=0.05, milestones=[])
    cpu_bf16(False)
    _stopped_after_one_epoch(*_tiny_fit_setup(), cfg, tmp_path)
    ckpt = load_checkpoint(tmp_path / "last.pt")
    del ckpt["numerics"]
    torch.save(ckpt, tmp_path / "last.pt")
    cpu_bf16(True)
    model_b, images, labels, step_b = _tiny_fit_setup(seed=1)
    fit(model_b, _loader(images, labels), cfg, tmp_path, step=step_b, progress=False)
    assert load_checkpoint(tmp_path / "last.pt")["numerics"] == {"bf16": False, "channels_last": False, "compiled": False}
