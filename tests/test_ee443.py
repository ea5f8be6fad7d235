"""Seed 002: shared members, the grid end to end on tiny data, and the tables."""
import json

import numpy as np
import pandas as pd
import pytest

from ee443_stacking import grid as ee_grid
from ee443_stacking import report as ee_report


def test_rows_share_members_instead_of_retraining():
    plan = ee_grid.grid_plan("paper")
    hp = (64, 1e-3)
    rows = ee_grid.method_jobs("paper", ee_grid.Path("out"), "0.1", hp, plan, 4, {})
    names = {row: [j.name for j in jobs] for row, jobs in rows.items()}
    baseline = f"0.1/efficientnet_b0__ce__{ee_grid.hp_tag(*hp)}"
    assert baseline in names["stacking"]                              # the sweep's best run is stacking's b0
    assert names["stacking_wl"][0] in names["weighted_loss"]          # INS weighted loss is stacking / WL's b0
    assert len(names["bagging_wl"]) == 4 and len(names["artificial_balancing"]) == 3
    sweep = ee_grid.sweep_jobs("paper", ee_grid.Path("out"), plan, {})
    assert len(sweep) == 4 * 9 + 7 - 1                                # Fig 1's b0 at a sweep point runs once
    cfg = rows["bagging_wl"][2].config
    assert (cfg.data.bag_threshold, cfg.data.bag_index, cfg.loss.name, cfg.data.classes) == (112, 2, "wce", 50)


def test_grid_end_to_end_on_tiny_data_then_nothing_retrained(tiny_root, tmp_path, monkeypatch):
    tiny = ee_grid.GridPlan(datasets=["full", "0.1"], sweep={"batch_size": [32], "lr": [1e-3]}, balance_thresholds=[4],
                            weight_schemes=["ins"], bag_threshold=2, base_model="efficientnet_b0",
                            stack=["efficientnet_b0"], fig1_models=[], stacker_folds=2)   # 5 // 2: two learners
    monkeypatch.setattr(ee_grid, "grid_plan", lambda preset: tiny)
    monkeypatch.setattr(ee_report, "grid_plan", lambda preset: tiny)
    args = ["--preset", "smoke", "--data", str(tiny_root), "--out", str(tmp_path / "runs"), "--set", "train.epochs=1"]
    ee_grid.main(args)
    runs = tmp_path / "runs" / "smoke"
    trained = sorted(p.parent.relative_to(runs).as_posix() for p in runs.rglob("log.jsonl"))
    assert trained == ["0.1/efficientnet_b0__ab4__bs32_lr0.001", "0.1/efficientnet_b0__bag0_wl_ins__bs32_lr0.001",
                       "0.1/efficientnet_b0__bag1_wl_ins__bs32_lr0.001", "0.1/efficientnet_b0__ce__bs32_lr0.001",
                       "0.1/efficientnet_b0__wl_ins__bs32_lr0.001",
                       *[f"0.1/folds/efficientnet_b0__{v}__bs32_lr0.001__fold{k}of2" for v in ("ce", "wl_ins") for k in (0, 1)],
                       "full/efficientnet_b0__ce__bs32_lr0.001"]
    stacking = json.loads((runs / "0.1" / "stacking" / "record.json").read_text())
    member = json.loads((runs / "0.1" / "efficientnet_b0__ce__bs32_lr0.001" / "record.json").read_text())
    assert stacking["metrics"]["test"]["accuracy"] == member["metrics"]["test"]["accuracy"]   # one member: itself
    before = {p: json.loads(p.read_text())["run_id"] for p in runs.rglob("record.json")}
    ee_grid.main(args)                                                   # everything finished: nothing is redone
    assert {p: json.loads(p.read_text())["run_id"] for p in runs.rglob("record.json")} == before
    assert len(before) == 10 + 3 + 2                         # 10 trainings, 3 averaged ensembles, 2 learned stackers
    learned = json.loads((runs / "0.1" / "stacking_learned" / "record.json").read_text())
    assert learned["fitted_on"] == sum(member["train_counts"]) - member["train_counts"].count(1)   # out-of-fold
    ee_report.main(["--preset", "smoke", "--results", str(tmp_path)])
    table = pd.read_csv(tmp_path / "smoke" / "results.csv", index_col=0)
    assert float(table.loc["0.1", "stacking_ours"]) == pytest.approx(100 * member["metrics"]["test"]["accuracy"])
    assert float(table.loc["0.1", "stacking_paper"]) == 77.2 and table.loc["0.02", "stacking_ours"] == "–"
    assert "stacking_learned" in (tmp_path / "smoke" / "ensembles.md").read_text()
    for name in ("fig1.md", "fig2.md", "ensembles.md", "parameters.md", "staircase.png",
                 "fig4_weighted_loss_0.1.png", "fig5_6_bagging_0.1.png"):
        assert (tmp_path / "smoke" / name).stat().st_size > 0, name


def test_plan_counts_every_training_without_data():
    """The paper grid: 84 trainings for the seed's rows with member reuse (91 if every row trained its own
    members), 54 more for the learned stacker's 3 folds; counted from the split's definition alone."""
    uses = ee_grid.all_uses("paper", ee_grid.Path("out"), ee_grid.grid_plan("paper"), {})
    seed_rows = [(row, j.name) for row, j in uses if "folds" not in row]
    assert (len({name for _, name in seed_rows}), len(seed_rows)) == (84, 91)
    assert (len({j.name for _, j in uses}), len(uses)) == (138, 145)
    assert sum(row == "bagging_wl" for row, _ in uses) == 3 * 4          # 450 // 112 learners per long-tailed set


def test_only_trains_the_matching_runs_phase_by_phase(tiny_root, tmp_path, monkeypatch):
    tiny = ee_grid.GridPlan(datasets=["0.1"], sweep={"batch_size": [32], "lr": [1e-3]}, balance_thresholds=[4, 8],
                            weight_schemes=["ins"], bag_threshold=3, base_model="efficientnet_b0",
                            stack=["efficientnet_b0"], fig1_models=[], stacker_folds=0)
    monkeypatch.setattr(ee_grid, "grid_plan", lambda preset: tiny)
    args = ["--preset", "smoke", "--data", str(tiny_root), "--out", str(tmp_path), "--set", "train.epochs=1"]
    runs = tmp_path / "smoke" / "0.1"

    def trained():
        return sorted(p.parent.name for p in runs.rglob("record.json"))

    ee_grid.main([*args, "--only", "0.1/efficientnet_b0__ab*"])           # its sweep point has not run: nothing
    assert trained() == []
    ee_grid.main([*args, "--only", "0.1/efficientnet_b0__ce__*", "0.1/efficientnet_b0__ab4*"])
    assert trained() == ["efficientnet_b0__ab4__bs32_lr0.001", "efficientnet_b0__ce__bs32_lr0.001", "stacking"]


def test_validation_split_is_the_last_images_of_each_class_and_never_trained_on():
    from common.config import validate_config
    from common.datasets import training_indices

    labels = np.repeat(np.arange(10), 50)
    data = {"dataset": "cifar10", "imb_factor": 0.1, "max_per_class": 20}
    plain = training_indices(labels, 10, validate_config({"data": data, "model": {"name": "resnet32"}}).data)
    held = training_indices(labels, 10, validate_config({"data": {**data, "val_per_class": 5},
                                                         "model": {"name": "resnet32"}}).data)
    assert plain["validation"] is None
    np.testing.assert_array_equal(held["train"], plain["train"])     # taken from images the proxy never uses
    assert np.bincount(labels[held["validation"]]).tolist() == [5] * 10
    assert all(labels[i] == labels[j] for i, j in zip(held["validation"][:5], range(45, 50)))
    assert not set(held["train"]) & set(held["validation"])


def test_sweeps_choose_on_validation_and_the_test_set_only_as_the_oracle():
    def rec(val, test):
        return {"metrics": {"test": {"accuracy": test}, **({"validation": {"accuracy": val}} if val else {})}}

    runs = {"a": rec(0.6, 0.5), "b": rec(0.5, 0.7)}
    assert ee_grid.best_of(runs) == "a" and ee_grid.best_of(runs, "test") == "b"
    assert ee_grid.best_of({"a": rec(None, 0.5), "b": rec(None, 0.7)}) == "b"      # no validation set: the seed's way


def test_phase_two_is_named_at_the_point_its_sweep_chose(tmp_path):
    """--list and --plan find the runs the grid trained: phase 2 at chosen.json's point, the fixed
    point before a sweep chose."""

    def phase_two(root):
        return {j.name for j in ee_grid.jobs("smoke", root, {}, None) if "__ab" in j.name}

    assert phase_two(tmp_path) and all(n.endswith("__bs32_lr0.001") for n in phase_two(tmp_path))
    (tmp_path / "chosen.json").write_text('{"0.1": {"batch_size": 32, "lr": 0.003}}')
    assert phase_two(tmp_path) and all(n.endswith("__bs32_lr0.003") for n in phase_two(tmp_path))
