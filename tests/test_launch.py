"""Several workers on one grid through submitit (local executor here; SLURM takes the same path)."""
import argparse
import json
import time

import pytest

from common import launch
from common.cli import seed_list

GRID = ["thesis_cifar100lt.grid", "--preset", "smoke", "--models", "mobilenet_v2", "--losses", "ce", "bs", "focal",
        "--train-sets", "long_tailed"]
NAMES = [f"mobilenet_v2__{loss}__long_tailed" for loss in ("ce", "bs", "focal")]


def _metrics(folder):
    return {name: json.loads((folder / "smoke" / name / "record.json").read_text())["metrics"] for name in NAMES}


@pytest.fixture
def repo_on_path(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(launch.Path(__file__).resolve().parents[1]))


def _executor(tmp_path, workers):
    args = argparse.Namespace(time=10, name="test", partition=None, gpus_per_worker=0, cpus_per_worker=1,
                                     mem_gb=None)
    return launch.build_executor("local", tmp_path / "logs", workers, args)


def test_two_local_workers_give_the_serial_records(tiny_root, tmp_path, repo_on_path):
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    assert launch.run_module([*GRID, "--data", str(tiny_root), "--out", str(serial)]) == 0
    jobs = _executor(tmp_path, 2).map_array(launch.run_module, [[*GRID, "--data", str(tiny_root), "--out",
                                                                  str(parallel)]] * 2, [None, None])
    assert [job.result() for job in jobs] == [0, 0], [job.stderr() for job in jobs]
    assert _metrics(parallel) == _metrics(serial)
    logs = "".join(job.stdout() for job in jobs)
    assert sum(logs.count(f"] {name}\n") for name in NAMES) == 2 * len(NAMES)   # both workers went through the grid
    assert logs.count("skip") + logs.count("claimed by another") >= len(NAMES)  # ... and trained each run once


def test_a_killed_workers_run_is_finished_by_another(tiny_root, tmp_path, repo_on_path):
    out = tmp_path / "runs"
    command = [*GRID, "--data", str(tiny_root), "--out", str(out), "--set", "train.epochs=3"]
    doomed, survivor = _executor(tmp_path, 2).map_array(launch.run_module, [command] * 2, [None, None])
    deadline = time.time() + 120
    while "== [" not in (doomed.stdout() or "") and time.time() < deadline:
        time.sleep(0.05)
    started = (doomed.stdout() or "").split("] ")[-1].split()[0]
    doomed.cancel()                                        # dies inside (or just before) its run
    assert survivor.result() == 0, survivor.stderr()
    with pytest.raises(Exception):
        doomed.result()
    assert started in NAMES and all((out / "smoke" / name / "record.json").exists() for name in NAMES)


def test_launch_command_line(tmp_path, capsys):
    with pytest.raises(SystemExit, match="usage"):
        launch.main(["--launcher", "local"])
    with pytest.raises(SystemExit):
        launch.main(["--launcher", "slurm", "--", "thesis_cifar100lt.grid"])     # an array needs a size
    assert "--workers" in capsys.readouterr().err
    assert launch.run_module(["thesis_cifar100lt.grid", "--preset", "smok", "--data", "x"]) != 0   # one bad worker


def test_debug_launcher_runs_the_workers_then_the_report(tiny_root, tmp_path, repo_on_path):
    code = launch.launch("debug", 1, [*GRID[:5], "--losses", "ce", "--train-sets", "long_tailed", "--data", str(tiny_root),
                                      "--out", str(tmp_path / "runs")],
                         ["thesis_cifar100lt.report", "--preset", "smoke", "--results", str(tmp_path)],
                         argparse.Namespace(logs=str(tmp_path / "logs"), time=10, name="t", partition=None,
                                                   gpus_per_worker=0, cpus_per_worker=1, mem_gb=None))
    assert code == 0 and (tmp_path / "smoke" / "table_4_4.md").exists()


def test_seed_lists():
    assert seed_list("0,1,2") == [0, 1, 2] and seed_list("3") == [3]
    for bad in ("0,0", "a", ""):
        with pytest.raises(Exception):
            seed_list(bad)


def test_slurm_options_reach_the_sbatch_file(tmp_path, monkeypatch):
    """No cluster here: a stand-in ``srun`` lets submitit build the SLURM executor, and the
    sbatch text it would submit carries the command line's options."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "srun").write_text("#!/bin/sh\nexit 0\n")
    (tmp_path / "bin" / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{launch.os.environ['PATH']}")
    args = argparse.Namespace(time=None, name="ltrepro", partition="gpu", gpus_per_worker=1, cpus_per_worker=8,
                                     mem_gb=None)
    executor = launch.build_executor("slurm", tmp_path / "logs", 16, args)
    assert executor._executor.parameters["array_parallelism"] == 16
    sbatch = executor._executor._make_submission_file_text("python -u -m submitit.core._submit logs", "uid")
    for line in ("--partition=gpu", "--gpus-per-node=1", "--cpus-per-task=8", "--time=1440", "--job-name=ltrepro"):
        assert f"#SBATCH {line}" in sbatch


def test_several_workers_share_one_gpu_and_the_cores(monkeypatch, tmp_path):
    started = {}

    class Done:
        job_id = "1_0"

        def result(self):
            return 0

    class Executor:
        def map_array(self, fn, commands, gpus, threads):
            started.update(commands=commands, gpus=gpus, threads=threads)
            return [Done() for _ in commands]

    monkeypatch.setattr(launch, "visible_gpus", lambda: ["0"])
    monkeypatch.setattr(launch, "build_executor", lambda *a: Executor())
    monkeypatch.setattr(launch.os, "sched_getaffinity", lambda pid: set(range(16)))
    args = argparse.Namespace(logs=str(tmp_path), workers_per_gpu=8)
    assert launch.launch("local", 0, ["sla_multiexpert.grid", "--preset", "paper"], None, args) == 0
    assert started["gpus"] == ["0"] * 8 and started["threads"] == [2] * 8
