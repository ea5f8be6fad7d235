"""Seed 001 (thesis): the grid, the offline check, the plan, and the tables from fake records."""
import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from common import study as common_study
from common.models import PretrainedWeightsUnavailable, build_model
from thesis_cifar100lt import grid as thesis_grid
from thesis_cifar100lt import report as thesis_report

REPO = Path(__file__).resolve().parents[1]


def test_grid_has_56_distinct_runs():
    runs = list(thesis_grid.grid())
    assert len(runs) == 56 and len({name for name, _ in runs}) == 56
    combos = {(o["model"]["name"], o["loss"]["name"], o["data"]["train_set"]) for _, o in runs}
    assert len(combos) == 56


def test_paper_preset_is_the_thesis_protocol():
    cfg = thesis_grid.config("paper", dict(thesis_grid.grid())["resnet50__ce__long_tailed"])
    t = cfg.train
    assert (t.optimizer, t.lr, t.batch_size, t.epochs, t.step_size, t.gamma) == ("adam", 0.001, 128, 90, 30, 0.1)
    assert t.size == 224 and t.resize_first and t.select_best and cfg.model.pretrained
    assert cfg.data.split == "thesis" and cfg.data.split_seed == 42 and cfg.data.imb_factor == 0.01


@pytest.mark.parametrize("name", ["convnext_base", "vit_base_patch16_224"])
def test_large_models_split_into_features_and_classifier(name):
    torch.manual_seed(0)
    model = build_model(name, 100, **thesis_grid.MODEL_KWARGS.get(name, {})).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model.classifier(model.forward_features(x)), model(x), atol=1e-5)


def test_offline_preflight_stops_before_training_and_names_weights(monkeypatch):
    def offline(name, *args, **kwargs):
        raise PretrainedWeightsUnavailable(f"could not get pretrained weights for {name} ... expected in cache: X")

    from common import grid as common_grid

    monkeypatch.setattr(common_grid, "build_model", offline)
    with pytest.raises(SystemExit) as stop:
        thesis_grid.preflight_weights("paper", ["resnet50", "vit_base_patch16_224"])
    msg = str(stop.value)
    assert "resnet50" in msg and "vit_base_patch16_224" in msg and "fetch_weights" in msg and "nothing was trained" in msg
    thesis_grid.preflight_weights("smoke", ["resnet50"])   # random init: nothing to check


def test_grid_runs_and_skips_finished(tiny_root, tmp_path, capsys):
    args = ["--preset", "smoke", "--data", str(tiny_root), "--out", str(tmp_path), "--models", "mobilenet_v2",
            "--losses", "bs", "--train-sets", "long_tailed"]
    thesis_grid.main(args)
    rec = json.loads((tmp_path / "smoke" / "mobilenet_v2__bs__long_tailed" / "record.json").read_text())
    assert set(rec["metrics"]) == {"balanced", "long_tailed"}
    assert {"head", "middle", "tail"} <= set(rec["metrics"]["long_tailed"])
    thesis_grid.main(args)
    assert "skip" in capsys.readouterr().out


def test_paper_preset_end_to_end_with_cached_weights(tiny_root, tmp_path, offline_weight_caches, monkeypatch,
                                                    capsys):
    """The paper path (pretrained weights from the cache, 224 px, Adam, best checkpoint) on tiny
    synthetic data: only the split sizes and the epoch count are cut."""
    import torchvision

    torch.manual_seed(0)
    offline_weight_caches("mobilenet_v2", torchvision.models.mobilenet_v2().state_dict())
    tiny = ["--set", "data.train_per_class=4", "--set", "data.test_per_class=1", "--set", "data.imb_factor=0.1",
            "--set", "data.min_count=1", "--set", "train.epochs=1", "--set", "train.batch_size=64"]
    base = ["--preset", "paper", "--data", str(tiny_root), "--models", "mobilenet_v2", "--losses", "ldam",
            "--train-sets", "long_tailed", *tiny]
    with monkeypatch.context() as m:  # overrides never write into the preset's own results
        m.setattr(common_study, "run_jobs", lambda *a, **k: pytest.fail("trained without its own --out"))
        with pytest.raises(SystemExit) as stop:
            thesis_grid.main(base)
    assert stop.value.code == 2 and "separate --out" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:      # nor change what the grid sets per run
        thesis_grid.main([*base, "--out", str(tmp_path), "--set", "loss.name=ce"])
    assert stop.value.code == 2 and "loss.name" in capsys.readouterr().err
    thesis_grid.main([*base, "--out", str(tmp_path)])
    rec = json.loads((tmp_path / "paper" / "mobilenet_v2__ldam__long_tailed" / "record.json").read_text())
    cfg = rec["config"]
    assert cfg["model"]["pretrained"] and cfg["train"]["size"] == 224 and cfg["train"]["optimizer"] == "adam"
    assert cfg["train"]["epochs"] == 1 and rec["epochs"] == 1
    assert {"balanced", "long_tailed"} == set(rec["metrics"])


def test_show_config_prints_each_resolved_run_config(capsys):
    import yaml

    thesis_grid.main(["--preset", "paper", "--data", "unused", "--show-config", "--models", "resnet50",
                      "--losses", "ce", "bs", "--train-sets", "balanced"])
    printed = re.split(r"^# ", capsys.readouterr().out, flags=re.M)[1:]
    assert [p.splitlines()[0] for p in printed] == ["resnet50__ce__balanced", "resnet50__bs__balanced"]
    runs = dict(thesis_grid.grid(["resnet50"], ["bs"], ["balanced"]))
    expected = thesis_grid.config("paper", runs["resnet50__bs__balanced"]).model_dump(mode="json")
    assert yaml.safe_load(printed[1].split("\n", 1)[1]) == expected


def test_plan_runs_without_data_at_a_small_probe_batch(tmp_path):
    """PLAN=1 of run_all.sh: no data step, no --data; a 224-px probe at batch 2 (bounded memory),
    hours per run and in total."""
    empty = tmp_path / "no_data"
    empty.mkdir()
    env = {**os.environ, "PLAN": "1", "PRESET": "paper", "MODELS": "mobilenet_v2", "LOSSES": "ce",
           "TRAIN_SETS": "long_tailed", "LTREPRO_DATA": str(empty), "PYTHON": sys.executable,
           "CUDA_VISIBLE_DEVICES": ""}                  # the CPU probe, also on a machine with a GPU
    done = subprocess.run(["bash", str(REPO / "thesis_cifar100lt" / "run_all.sh")], env=env, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "probe mobilenet_v2 at 224 px, batch 2 / eval 2 (the runs: 128 / 500)" in out
    assert re.search(r"mobilenet_v2__ce__long_tailed +90 epochs x +\d+ images ~ *[\d.]+ h", out)
    assert re.search(r"^total ~[\d,.]+ h on cpu.*; .* PFLOP, about .* GPU (h|min) on one H100", out, flags=re.M)
    assert not list(empty.iterdir())


def test_plan_lists_runs_with_estimate(capsys):
    args = argparse.Namespace(models=["mobilenet_v2"], losses=["ce"], train_sets=["balanced"])
    thesis_grid.STUDY.plan("smoke", thesis_grid.jobs("smoke", Path("out"), {}, args), torch.device("cpu"))
    out = capsys.readouterr().out
    assert "mobilenet_v2__ce__balanced" in out and "images/s" in out and "total ~" in out and "PFLOP" in out


def _fake_record(model, loss, train_set, acc):
    """A clearly fake record, for the table code only."""
    m = {"accuracy": acc / 100}
    return {"config": {"model": {"name": model}, "loss": {"name": loss}, "data": {"train_set": train_set}},
            "metrics": {"balanced": dict(m), "long_tailed": {**m, "head": acc / 100, "middle": acc / 200, "tail": 0.0}},
            "preset": "fake", "epochs": 0, "data": "FAKE test record", "environment": {"device": "none"},
            "finished": "2000-01-01T00:00:00"}


def test_tables_from_fake_records(tmp_path):
    runs = tmp_path / "runs" / "smoke"
    others = [loss for loss in thesis_grid.LOSSES if loss not in ("ce", "bs")]
    fakes = [("resnet50", "ce", "long_tailed", 50.0), ("resnet50", "bs", "long_tailed", 70.0),
             *[("resnet50", loss, "long_tailed", 60.0) for loss in others],          # all 7: Table 4.10 row
             ("resnet50", "ce", "balanced", 60.0), ("resnet50", "bs", "balanced", 64.0),
             *[("resnet50", loss, "balanced", 62.0) for loss in others],             # all 7: Table 4.9 row
             ("mobilenet_v2", "ce", "balanced", 90.0),                                # alone: no Table 4.9 cell
             ("mobilenet_v2", "ce", "long_tailed", 40.0), ("vit_base_patch16_224", "ce", "long_tailed", 80.0),
             ("convnext_base", "ce", "long_tailed", 70.0),                            # ce on all 4: Table 4.11 row
             ("resnet50", "la", "long_tailed", 99.0)]                                 # beyond the thesis's seven
    for model, loss, train_set, acc in fakes:
        d = runs / f"{model}__{loss}__{train_set}"
        d.mkdir(parents=True)
        (d / "record.json").write_text(json.dumps(_fake_record(model, loss, train_set, acc)))
    thesis_report.main(["--preset", "smoke", "--results", str(tmp_path)])
    out = tmp_path / "smoke"
    import pandas as pd
    paper = pd.read_csv("thesis_cifar100lt/paper_numbers.csv", dtype={"table": str})
    paper_bs = paper[(paper.table == "4.2") & (paper.row == "bs") & (paper.column == "long_tailed")].value.item()
    t42 = pd.read_csv(out / "table_4_2.csv", index_col=0)
    assert float(t42.loc["bs", "long_tailed_paper"]) == pytest.approx(paper_bs)
    assert float(t42.loc["bs", "long_tailed_diff"]) == pytest.approx(70.0 - paper_bs, abs=0.006)
    assert float(t42.loc["ce", "long_tailed_ours"]) == 50.0
    assert list(t42.index) == [*thesis_grid.LOSSES, "la"] and t42.loc["la", "long_tailed_paper"] == "–"
    assert float(t42.loc["la", "long_tailed_ours"]) == 99.0
    t44 = pd.read_csv(out / "table_4_4.csv", index_col=0)
    assert t44.loc["ce", "long_tailed_ours"] == "40.00" and t44.loc["seql", "long_tailed_ours"] == "–"
    t49 = pd.read_csv(out / "table_4_9.csv", index_col=0)
    assert t49.loc["resnet50", "thesis_result_ours"] == "64.00"          # best balanced after balanced training
    assert t49.loc["mobilenet_v2", "thesis_result_ours"] == "–"          # 1 of 7 losses run
    t410 = pd.read_csv(out / "table_4_10.csv", index_col=0)
    assert list(t410.index) == ["mobilenet_v2", "resnet50", "vit_b_16", "convnext_base"]   # the thesis's order
    assert t410.loc["resnet50", "long_tailed_mean_ours"] == "60.00"      # 50, 70 and five 60s (not la's 99)
    assert t410.loc["resnet50", "long_tailed_std_ours"] == "5.35"        # population std: sqrt(200 / 7)
    assert t410.loc["convnext_base", "long_tailed_mean_ours"] == "–"
    t411 = pd.read_csv(out / "table_4_11.csv", index_col=0)
    assert t411.loc["ce", "long_tailed_mean_ours"] == "60.00"            # 50, 40, 80, 70 over the 4 models
    assert t411.loc["bs", "long_tailed_mean_ours"] == "–"                # resnet50 only
    for fig in ("4_1", "4_2", "4_3", "4_4", "4_5", "4_6"):
        assert (out / f"figure_{fig}.png").stat().st_size > 0
    assert "FAKE test record" in (out / "table_4_2.md").read_text()
