"""What every study grid shares: seeds (a results root per seed, tables with mean ± std and n,
indices hashes), --only patterns, plans without data (every run_all.sh plans before its data step)."""
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.config import ConfigError
from common.grid import seed_plan
from common.report import combine_seeds, comparison_table, ours_frame, table_labels
from sla_multiexpert import grid as sla_grid
from sla_multiexpert import report as sla_report


def _cells(values: dict, label: str) -> pd.DataFrame:
    return ours_frame([{"table": "t", "row": r, "column": "acc", "value": v, "label": label} for r, v in values.items()])


def test_seeds_combine_into_mean_std_and_n():
    ours = combine_seeds([_cells({"a": 70.0, "b": 50.0}, "seed 0"), _cells({"a": 72.0}, "seed 1")])
    paper = pd.DataFrame({"table": ["t", "t"], "row": ["a", "b"], "column": ["acc", "acc"], "value": [71.0, 60.0],
                          "source": ["x", "x"]})
    table = comparison_table(paper, ours, "t", ["a", "b", "c"], ["acc"])
    assert table.loc["a", ("acc", "ours")] == "71.00 ± 1.41 (n=2)"           # sample std of 70 and 72
    assert table.loc["b", ("acc", "ours")] == "50.00 (n=1)"                   # say how many seeds a cell has
    assert table.loc["c", ("acc", "ours")] == "–"
    assert table.loc["a", ("acc", "diff")] == "+0.00"                         # the diff is to the mean
    assert table_labels(ours) == ["seed 0", "seed 1"]
    single = comparison_table(paper, combine_seeds([_cells({"a": 70.0}, "x")]), "t", ["a"], ["acc"])
    assert single.loc["a", ("acc", "ours")] == "70.00"                        # one seed: as before


def test_seed_plan_roots_and_conflicts(tmp_path):
    assert seed_plan(tmp_path, "smoke", None, 0, {}) == [(tmp_path / "smoke", {})]
    plan = seed_plan(tmp_path, "smoke", [0, 1], 0, {"train": {"epochs": 2}})
    assert plan == [(tmp_path / "smoke", {"train": {"epochs": 2, "seed": 0}}),
                    (tmp_path / "smoke@seed1", {"train": {"epochs": 2, "seed": 1}})]
    assert seed_plan(tmp_path, "smoke", [0], 42, {})[0][0] == tmp_path / "smoke@seed0"   # not the configs' seed
    with pytest.raises(ConfigError, match="--seeds only"):
        seed_plan(tmp_path, "smoke", [0, 1], 0, {"train": {"seed": 3}})


def test_grid_with_two_seeds_then_report(tiny_root, tmp_path, monkeypatch):
    out = tmp_path / "runs"
    run = "cifar10_r100__ce"
    sla_grid.main(["--preset", "smoke", "--data", str(tiny_root), "--out", str(out), "--only", run, "--seeds", "0,1"])
    first, second = (json.loads((out / root / run / "record.json").read_text()) for root in ("smoke", "smoke@seed1"))
    assert (first["config"]["train"]["seed"], second["config"]["train"]["seed"]) == (0, 1)
    assert first["train_indices_sha256"] == second["train_indices_sha256"]    # the same long-tailed subset
    assert len(first["train_indices_sha256"]) == 64
    assert list((out / "smoke" / run / "tensorboard").rglob("events.out.tfevents.*"))    # TensorBoard scalars
    sla_report.main(["--preset", "smoke", "--results", str(tmp_path)])
    table = pd.read_csv(tmp_path / "smoke" / "table_2.csv", index_col=0)
    cell = table.loc["ce", "cifar10_100_ours"]
    accs = [100 * r["metrics"]["test"]["accuracy"] for r in (first, second)]
    assert cell == f"{np.mean(accs):.2f} ± {np.std(accs, ddof=1):.2f} (n=2)"
    assert (tmp_path / "smoke" / "curves.png").stat().st_size > 0
    sla_report.main(["--preset", "smoke", "--results", str(tmp_path), "--seeds", "1"])                    # one seed asked for: that one only
    table = pd.read_csv(tmp_path / "smoke" / "table_2.csv", index_col=0)
    assert table.loc["ce", "cifar10_100_ours"] == f"{accs[1]:.2f}"


def test_only_patterns_select(capsys):      # a typo: tests/test_misuse.py
    sla_grid.main(["--preset", "smoke", "--list", "--only", "cifar10_r100__*", "cifar100_r200__ce"])
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert "cifar10_r100__ours" in listed and "cifar100_r200__ce" in listed
    assert all(n.startswith("cifar10_r100__") or n == "cifar100_r200__ce" for n in listed)


def test_sla_plan_needs_no_data(capsys, tmp_path):
    sla_grid.main(["--preset", "paper", "--plan", "--only", "cifar10_r100__ours", "--data", "/nonexistent",
                   "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "cifar10_r100__ours" in out and "200 epochs x 12406 images" in out and "total ~" in out


@pytest.mark.parametrize("study", ["thesis_cifar100lt", "sla_multiexpert", "ee443_stacking", "efficientnet_cifar10lt"])
def test_run_all_plans_before_any_data_step(study):
    text = (Path(__file__).resolve().parents[1] / study / "run_all.sh").read_text()
    plan = re.search(r'^if \[ -n "\$\{PLAN:-\}" \]; then.*?^fi$', text, flags=re.M | re.S)
    assert plan and "--plan" in plan.group() and "--data" not in plan.group()
    assert plan.end() < re.search(r"^DATA=", text, flags=re.M).start()


def test_sla_plan_prints_the_gpu_cost_beside_the_cpu_time(capsys, tmp_path):
    sla_grid.main(["--preset", "paper", "--plan", "--only", "cifar10_r100__ce", "--data", "/nonexistent",
                   "--out", str(tmp_path)])           # nothing finished there: the total is all there is
    total = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.match(r"total ~[\d,.]+ h on cpu; [\d,.]+ PFLOP, about [\d,.]+ GPU (h|min) on one H100 / H200 at 40%", total)


def test_total_line_turns_flops_into_gpu_hours():
    from common.grid import GPU_PEAK_FLOPS, total_line

    line = total_line(7200, GPU_PEAK_FLOPS * 0.4 * 3600 * 3, "cpu")
    assert line.startswith("total ~2.0 h on cpu; ") and "about 3.00 GPU h" in line


def _finished_run(folder, run_id):
    folder.mkdir(parents=True)
    (folder / "record.json").write_text(json.dumps({"run_id": run_id, "config": {}, "metrics": {},
                                                    "finished": "2026-01-01T00:00:00"}))
    (folder / "log.jsonl").write_text("{}\n")
    (folder / "predictions.npz").write_bytes(b"p")
    (folder / "last.pt").write_bytes(b"checkpoint")


def test_copy_finished_brings_records_not_checkpoints(tmp_path):
    from common.grid import main as grid_main

    src, dst = tmp_path / "elsewhere", tmp_path / "results"
    _finished_run(src / "paper" / "a", "run-a")
    (src / "paper" / "b").mkdir(parents=True)
    (src / "paper" / "b" / "last.pt").write_bytes(b"still training")
    grid_main(["copy-finished", str(src), str(dst)])
    assert sorted(p.name for p in (dst / "paper" / "a").iterdir()) == ["log.jsonl", "predictions.npz", "record.json"]
    assert not (dst / "paper" / "b").exists()
    (dst / "paper" / "a" / "log.jsonl").write_text("kept\n")
    grid_main(["copy-finished", str(src), str(dst)])          # the same run: left as it is
    assert (dst / "paper" / "a" / "log.jsonl").read_text() == "kept\n"
    _finished_run(src / "smoke" / "c", "run-c")
    grid_main(["copy-finished", str(src), str(dst), "--preset", "paper"])   # another preset's run stays out
    assert not (dst / "smoke").exists()


def test_copy_finished_brings_the_grids_own_files(tmp_path):
    from common.grid import main as grid_main

    src, dst = tmp_path / "elsewhere", tmp_path / "results"
    _finished_run(src / "paper" / "a", "run-a")
    (src / "paper" / "chosen.json").write_text('{"lt": {"lr": 0.1}}')
    (src / "paper" / "notes.txt").write_text("not a grid file")
    _finished_run(src / "smoke" / "c", "run-c")
    (src / "smoke" / "chosen.json").write_text("{}")
    grid_main(["copy-finished", str(src), str(dst), "--preset", "paper"])
    assert (dst / "paper" / "chosen.json").read_text() == '{"lt": {"lr": 0.1}}'
    assert not (dst / "paper" / "notes.txt").exists() and not (dst / "smoke").exists()
