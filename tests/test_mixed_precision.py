"""bf16 autocast and channels_last on a CPU (the path CUDA runs too): runs train in them where
the CPU has native bf16, stay in fp32 where it has not, record which, and resume in the
precision of the machine they resume on, logging which epochs ran in which."""
import math

import numpy as np
import pytest
import torch

from common import precision
from common.config import TrainConfig
from common.engine import (RESUME_NUMERICS, CheckpointError, fit, load_checkpoint, make_step, run_numerics,
                           training_segments)
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


def test_a_run_resumed_where_bf16_is_missing_goes_on_in_fp32_and_logs_both(tmp_path, cpu_bf16):
    cfg = TrainConfig(epochs=2, lr=0.05, milestones=[])
    cpu_bf16(True)
    model, images, labels, step = _tiny_fit_setup()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _stopped_after_one_epoch(model, images, labels, step, cfg, tmp_path)
    assert load_checkpoint(tmp_path / "last.pt")["numerics"] == BF16
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())

    cpu_bf16(False)                     # the machine changed: the run goes on in this one's numerics
    model_b, images, labels, step_b = _tiny_fit_setup(seed=1)
    history = fit(model_b, _loader(images, labels), cfg, tmp_path, step=step_b, progress=False)
    assert [row["epoch"] for row in history] == [1, 2]
    assert load_checkpoint(tmp_path / "last.pt")["numerics"] == FP32
    assert model_b.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    segments = training_segments(history)
    assert [s["epochs"] for s in segments] == [[1, 1], [2, 2]]
    assert [s["numerics"].split(",")[0] for s in segments] == ["bf16 autocast", "fp32"]
    assert all(s["device"].startswith("cpu (") for s in segments)


def test_resume_numerics_checkpoint_keeps_the_checkpoints_and_a_wrong_value_is_refused(tmp_path, cpu_bf16, monkeypatch):
    cfg = TrainConfig(epochs=2, lr=0.05, milestones=[])
    cpu_bf16(False)
    _stopped_after_one_epoch(*_tiny_fit_setup(), cfg, tmp_path)
    cpu_bf16(True)
    monkeypatch.setenv(RESUME_NUMERICS, "checkpoint")
    model_b, images, labels, step_b = _tiny_fit_setup(seed=1)
    history = fit(model_b, _loader(images, labels), cfg, tmp_path, step=step_b, progress=False)
    assert load_checkpoint(tmp_path / "last.pt")["numerics"] == FP32
    assert len(training_segments(history)) == 1
    monkeypatch.setenv(RESUME_NUMERICS, "bf16")
    with pytest.raises(CheckpointError, match="expected 'native'"):
        run_numerics(tmp_path, torch.device("cpu"), cfg)


def test_a_record_of_a_run_trained_in_two_numerics_says_mixed_numerics(tiny_root, tmp_path, cpu_bf16):
    from common.experiment import default_step
    from common.report import budget_label
    from sla_multiexpert.grid import run_config, runs

    run = next(r for r in runs("smoke") if r.name == "cifar10_r100__ce")
    cfg = run_config(run, "smoke")

    def stops_at_epoch_two(ctx):
        step, hooks = default_step(ctx)

        def interrupted(m, x, y, i, epoch):
            if epoch == 1:
                raise KeyboardInterrupt
            return step(m, x, y, i, epoch)
        return interrupted, hooks

    cpu_bf16(False)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg, tmp_path / "run", tiny_root, progress=False, build_step=stops_at_epoch_two)
    cpu_bf16(True)
    rec = run_experiment(cfg, tmp_path / "run", tiny_root, progress=False)
    assert [(s["epochs"], s["numerics"].split(",")[0]) for s in rec["segments"]] == \
        [([1, 1], "fp32"), ([2, 2], "bf16 autocast")]
    assert rec["numerics"] == BF16
    label = budget_label(rec)
    assert "mixed numerics: epochs 1-1 fp32 on cpu (" in label and ", epochs 2-2 bf16 on cpu (" in label


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


def test_compile_compiles_whole_functions_and_keeps_the_state_dict(monkeypatch):
    """train.compile compiles the functions a step runs through, whole (graph counts:
    tests/test_cuda_paths.py); the compilation itself (about a minute on a CPU) is left to the benchmark."""
    from common.models import build_model

    compiled = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: compiled.append(fn.__name__) or fn)
    model = build_model("resnet32", 10)
    keys = list(model.state_dict())
    precision.apply_numerics(model, precision.Numerics(bf16=False, channels_last=False, compiled=True))
    assert compiled == ["forward_features"]
    assert list(model.state_dict()) == keys


def test_a_checkpoint_from_before_numerics_were_kept_names_what_its_epochs_ran_in(tmp_path, cpu_bf16):
    """Before numerics were kept a CPU run trained in fp32: its last.pt (no 'numerics', no
    per-epoch provenance) goes on in this machine's numerics, its earlier epochs logged as fp32
    on an unrecorded device."""
    cfg = TrainConfig(epochs=2, lr=0.05, milestones=[])
    cpu_bf16(False)
    _stopped_after_one_epoch(*_tiny_fit_setup(), cfg, tmp_path)
    ckpt = load_checkpoint(tmp_path / "last.pt")
    del ckpt["numerics"]
    ckpt["history"] = [{k: v for k, v in row.items() if k not in ("numerics", "device")} for row in ckpt["history"]]
    torch.save(ckpt, tmp_path / "last.pt")
    cpu_bf16(True)
    model_b, images, labels, step_b = _tiny_fit_setup(seed=1)
    history = fit(model_b, _loader(images, labels), cfg, tmp_path, step=step_b, progress=False)
    assert load_checkpoint(tmp_path / "last.pt")["numerics"] == BF16
    first, second = training_segments(history)
    assert first == {"epochs": [1, 1], "numerics": "fp32, contiguous, eager", "device": None}
    assert second["numerics"].startswith("bf16 autocast") and second["device"].startswith("cpu (")
