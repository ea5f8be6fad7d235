"""The benchmark command prints every figure and ratio it promises (its numbers are read, not tested)."""
import re

from common import benchmark


def test_benchmark_prints_step_and_epoch_figures_with_ratios(tmp_path, capsys, monkeypatch):
    from common import precision
    monkeypatch.setattr(precision, "COMPILE_BACKEND", "eager")      # the same graphs, compiled in seconds
    benchmark.main(["--data", str(tmp_path), "--images", "64", "--test-images", "32", "--batch-size", "32",
                    "--batches", "1", "--workers", "0"])
    out = capsys.readouterr().out
    assert "random images (no CIFAR-10 found)" in out and "configured numerics here:" in out
    for label in ("training step, as configured", "training step, fp32 contiguous", "ratio, training only",
                  "ratio, epoch + evaluation"):
        assert re.search(rf"{re.escape(label)} +[\d.]+", out), label
    assert re.search(r"as configured +\d+ images/s, [01] host syncs per step", out)
    assert re.search(r"as configured, eager +\d+ images/s\n.*as configured, compiled +\d+ images/s, [01] host syncs", out)
    assert re.search(r"project epoch .*\n  train +\d+ images/s, evaluation +\d+ images/s", out)
    assert re.search(r"conventional epoch \(PIL Dataset, DataLoader, 0 workers, fp32\)\n  train +\d+ images/s", out)


def test_multi_expert_benchmark_prints_each_model_eager_and_compiled(capsys, monkeypatch):
    from common import precision
    from sla_multiexpert import benchmark as sla_benchmark
    monkeypatch.setattr(precision, "COMPILE_BACKEND", "eager")
    sla_benchmark.main(["--batches", "1", "--batch-size", "8", "--device", "cpu", "--compile"])
    out = capsys.readouterr().out
    for model in ("plain ResNet-32", "multi-expert ResNet-32"):
        assert re.search(rf"{model}.* +\d+ images/s  \(augmentation [\d.]+% of the step\)\n"
                         rf" +the same, torch.compile +\d+ images/s  \([\d.]+x\)", out), model
