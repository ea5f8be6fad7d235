"""The CUDA code path (bf16 autocast, channels_last) exercised on the CPU, so dtype and layout
mistakes show up without a GPU: CPU autocast supports bf16 for convolutions and matmuls."""
import math

import pytest
import torch

from common import engine
from common.experiment import run_experiment


@pytest.fixture
def cuda_like_precision(monkeypatch):
    """bf16 autocast and channels_last as the engine uses them on CUDA, here on the CPU."""
    entered = []

    def cpu_autocast(device, enabled):
        entered.append(enabled)
        return torch.autocast(device_type="cpu", dtype=torch.bfloat16, enabled=enabled)

    def channels_last(model, cfg):
        if cfg.channels_last:
            model.to(memory_format=torch.channels_last)
            model._channels_last = True

    monkeypatch.setattr(engine, "autocast", cpu_autocast)
    monkeypatch.setattr(engine, "use_channels_last", channels_last)
    return entered


def _finite(rec):
    assert all(math.isfinite(row["train_loss"]) for row in rec["history"])
    for metrics in rec["metrics"].values():
        assert 0 <= metrics["accuracy"] <= 1 and math.isfinite(metrics["ece"])


def test_thesis_run_under_bf16_and_channels_last(tiny_root, tmp_path, cuda_like_precision):
    from thesis_cifar100lt import grid

    overrides = dict(grid.grid(["mobilenet_v2"], ["ldam"], ["long_tailed"]))["mobilenet_v2__ldam__long_tailed"]
    rec = run_experiment(grid.config("smoke", overrides), tmp_path / "run", tiny_root, progress=False)
    _finite(rec)
    assert any(cuda_like_precision)  # training and validation ran under bf16 autocast


def test_sla_run_under_bf16_and_channels_last(tiny_root, tmp_path, cuda_like_precision):
    from sla_multiexpert.grid import run_config, runs
    from sla_multiexpert.train import build_step

    run = next(r for r in runs("smoke") if r.name == "cifar100_r100__ours")
    cfg = run_config(run, "smoke", {"data": {"classes": 20}})  # bf16 on a CPU is slow
    rec = run_experiment(cfg, tmp_path / run.name, tiny_root, build_step=build_step, progress=False)
    _finite(rec)
    assert len(rec["history"]) == 2 and any(cuda_like_precision)  # both stages, under bf16 autocast
