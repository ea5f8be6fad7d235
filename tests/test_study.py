"""A study is one declaration: the shared grid and report commands do the rest."""
import json

import pandas as pd
import pytest
import yaml

from common.config import config_record
from common.report import comparison_table, ours_frame, write_table
from common.runstore import read_records
from common.study import ReportInput, Run, Study, Written, grid_main, report_main

CONFIG = {"data": {"dataset": "cifar10", "imb_factor": 0.1, "min_count": 1},
          "model": {"name": "resnet32"}, "loss": {"name": "ce"},
          "train": {"epochs": 1, "batch_size": 16, "milestones": [1], "warmup_epochs": 0, "augment": "none"},
          "presets": {"smoke": {}, "paper": {"train": {"epochs": 200}}}}


@pytest.fixture
def fifth_study(tmp_path):
    folder = tmp_path / "fifth"
    (folder / "configs").mkdir(parents=True)
    config = folder / "configs" / "base.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    (folder / "paper_numbers.csv").write_text("table,row,column,value,source\nt1,ce,accuracy,70.4,Table 1\n")
    runs = [Run("ce", config), Run("bs", config, {"loss": {"name": "bs"}})]
    return Study("fifth", folder, "A fifth study", (config,), plan=lambda preset, jobs, device: print(len(jobs), "runs"),
                 jobs=lambda preset, root, cli, args: [run.job(preset, root, cli) for run in runs])


def test_a_fifth_study_runs_and_reports_from_its_declaration(fifth_study, tiny_root, tmp_path, capsys):
    grid_main(fifth_study, ["--preset", "paper", "--list", "--out", str(tmp_path / "nowhere")])
    assert [line.split() for line in capsys.readouterr().out.splitlines()] == [["ce", "not", "started"],
                                                                               ["bs", "not", "started"]]
    grid_main(fifth_study, ["--preset", "paper", "--show-config", "--only", "bs"])
    shown = yaml.safe_load(capsys.readouterr().out.split("\n", 1)[1])
    assert (shown["loss"]["name"], shown["train"]["epochs"]) == ("bs", 200)
    grid_main(fifth_study, ["--preset", "paper", "--plan"])
    assert capsys.readouterr().out.strip() == "2 runs"

    results = tmp_path / "results" / "fifth"
    grid_main(fifth_study, ["--preset", "smoke", "--data", str(tiny_root), "--out", str(results / "runs"),
                            "--only", "ce"])
    capsys.readouterr()
    record = json.loads((results / "runs" / "smoke" / "ce" / "record.json").read_text())
    assert record["epochs"] == 1 and not (results / "runs" / "smoke" / "bs").exists()

    def write_tables(inp: ReportInput) -> Written:
        records = [r for root in inp.roots.values() for r in read_records(root)]
        ours = ours_frame([{"table": "t1", "row": r["config"]["loss"]["name"], "column": "accuracy",
                            "value": 100 * r["metrics"]["test"]["accuracy"], "label": ""} for r in records])
        write_table(comparison_table(inp.paper, ours, "t1"), inp.out / "table_1", "Table 1")
        return Written(f"wrote Table 1 from {len(records)} runs", ours)

    report_main(fifth_study, write_tables, "Table 1", ["--preset", "smoke", "--results", str(results)])
    assert capsys.readouterr().out.strip() == f"wrote Table 1 from 1 runs to {results / 'smoke'}"
    table = pd.read_csv(results / "smoke" / "table_1.csv", index_col=0)
    assert table.loc["ce", "accuracy_paper"] == 70.4
    assert float(table.loc["ce", "accuracy_ours"]) == pytest.approx(100 * record["metrics"]["test"]["accuracy"], abs=0.01)


def test_the_study_grid_refuses_what_it_should(fifth_study, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:                  # a typo in --only: one line, nothing trained
        grid_main(fifth_study, ["--preset", "smoke", "--only", "ec"])
    assert "'ec'" in str(stop.value)
    with pytest.raises(SystemExit) as stop:                  # --set into the preset's own results
        grid_main(fifth_study, ["--preset", "smoke", "--set", "train.epochs=2"])
    assert stop.value.code == 2 and "separate --out" in capsys.readouterr().err
    fixed = Study(**{**fifth_study.__dict__, "fixed_keys": ("loss.name",)})
    with pytest.raises(SystemExit) as stop:                  # a key the grid sets per run
        grid_main(fixed, ["--preset", "smoke", "--out", str(tmp_path), "--set", "loss.name=bs"])
    assert stop.value.code == 2 and "loss.name" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:                  # no dataset there
        grid_main(fifth_study, ["--preset", "smoke", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "o"),
                                "--skip-missing-data"])
    assert "nothing to train" in str(stop.value) and not (tmp_path / "o").exists()


def test_a_study_report_rewrites_the_results_index(tmp_path, capsys):
    from sla_multiexpert import report as sla_report

    sla_report.main(["--preset", "smoke", "--results", str(tmp_path / "results" / "sla_multiexpert")])
    index = (tmp_path / "results" / "README.md").read_text()
    assert "## sla_multiexpert" in index and "smoke" in index


def test_list_says_where_each_run_stands(fifth_study, tiny_root, tmp_path, capsys):
    """finished (top-1), at epoch k of N with its last.pt's numerics, claimed (host, pid), not started."""
    import os
    import socket

    from common.engine import save_atomic
    from common.runstore import claim

    runs = tmp_path / "runs"
    grid_main(fifth_study, ["--preset", "smoke", "--data", str(tiny_root), "--out", str(runs), "--only", "ce"])
    top1 = 100 * json.loads((runs / "smoke" / "ce" / "record.json").read_text())["metrics"]["test"]["accuracy"]
    bs = runs / "smoke" / "bs"
    bs.mkdir()
    bs_config = next(j for j in fifth_study.jobs("smoke", runs / "smoke", {}, None) if j.name == "bs").config
    run_config = config_record(bs_config) | {"train": {**config_record(bs_config)["train"], "epochs": 7}}
    save_atomic({"epoch": 2, "run_config": run_config,
                 "numerics": {"bf16": True, "channels_last": True, "compiled": False}}, bs / "last.pt")
    capsys.readouterr()

    def states():
        grid_main(fifth_study, ["--preset", "smoke", "--out", str(runs), "--list"])
        return dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())

    listed = states()
    assert listed["ce"] == f"finished (top-1 {top1:.2f})"
    assert listed["bs"] == ("at epoch 3 of 7 (bf16 autocast, channels_last, eager), a last.pt of another config: "
                            "the run would start over")           # the smoke preset trains 1 epoch
    save_atomic({"epoch": 0, "run_config": config_record(bs_config),
                 "numerics": {"bf16": True, "channels_last": True, "compiled": False}}, bs / "last.pt")
    assert states()["bs"] == "at epoch 1 of 1 (bf16 autocast, channels_last, eager)"
    with claim(bs):
        assert states()["bs"] == (f"at epoch 1 of 1 (bf16 autocast, channels_last, eager); claimed by another "
                                  f"process (host {socket.gethostname()}, pid {os.getpid()})")
    assert states()["bs"].endswith("eager)")           # the claim is given back with the process's block
    (bs / "last.pt").unlink()
    assert states()["bs"] == "not started"


def test_plan_covers_every_seed_and_says_what_is_left(fifth_study, tiny_root, tmp_path, capsys):
    """--plan --seeds: each seed's runs, each with where it stands; the total says how much is left
    (a finished run nothing, one in flight its epochs after last.pt)."""
    import re
    from functools import partial

    from common.engine import save_atomic
    from common.grid import print_plan

    def probe(cfg, device):            # one training image a second, evaluation free
        return 1.0, 1e12, 1e6, 1e6

    study = Study(**{**fifth_study.__dict__, "plan": partial(print_plan, probe=probe)})
    runs, four = tmp_path / "runs", ["--set", "train.epochs=4"]
    grid_main(study, ["--preset", "smoke", "--data", str(tiny_root), "--out", str(runs), "--only", "ce", *four])
    (runs / "smoke" / "bs").mkdir()
    bs = next(j for j in study.jobs("smoke", runs / "smoke", {"train": {"epochs": 4}}, None) if j.name == "bs")
    save_atomic({"epoch": 0, "run_config": config_record(bs.config)}, bs.out_dir / "last.pt")
    (runs / "smoke@seed1" / "ce").mkdir(parents=True)        # and one of another config: it would start over
    save_atomic({"epoch": 0, "run_config": {"train": {"epochs": 9}}}, runs / "smoke@seed1" / "ce" / "last.pt")
    capsys.readouterr()
    grid_main(study, ["--preset", "smoke", "--out", str(runs), "--plan", "--seeds", "0,1", *four])
    out = capsys.readouterr().out
    states = dict(re.findall(r"^  (\S+) .* PFLOP  (.*)$", out, flags=re.M))
    assert list(states) == ["smoke/ce", "smoke/bs", "smoke@seed1/ce", "smoke@seed1/bs"]
    assert states["smoke/ce"].startswith("finished (top-1 ")
    assert states["smoke/bs"] == "at epoch 1 of 4 (numerics not recorded)"
    assert states["smoke@seed1/ce"].endswith("a last.pt of another config: the run would start over")
    assert states["smoke@seed1/bs"] == "not started"
    total, left = map(float, re.search(r"total ~([\d.]+) h on cpu \(([\d.]+) h of it left: 1 finished, "
                                       r"1 in flight\)", out).groups())
    assert left / total == pytest.approx((0 + 3 / 4 + 1 + 1) / 4, rel=0.05)


def test_list_into_a_reader_that_leaves_early_ends_quietly(tmp_path):
    """``--list | head -1``: the reader closes the pipe; the command ends without a traceback."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}     # output buffered, as in a shell
    proc = subprocess.Popen([sys.executable, "-m", "sla_multiexpert.grid", "--preset", "smoke", "--list",
                             "--out", str(tmp_path)], cwd=Path(__file__).resolve().parents[1], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()                                  # gone before the first line is written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and "Traceback" not in err, err
