"""Fault cases: tampered and damaged files, kills mid-write, diverging runs, stale and concurrent runs,
unwritable results. Each must end in one clear error or a correct result, never in a broken folder."""
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from common.config import validate_config
from common.data import CifarFormatError, load_cifar
from common.data.synthetic import write_synthetic_cifar
from common.engine import CheckpointError, NonFiniteLossError
from common.experiment import default_step, run_experiment
from common.grid import Job, run_jobs
from common.runstore import (ResultsNotWritableError, RunClaimedError, StaleRunError, claim, finished_record,
                             read_records)

REPO = Path(__file__).resolve().parents[1]


def _cfg(**train):
    """A two-epoch ResNet-32 run that validates on the test set and keeps best.pt."""
    return validate_config({"data": {"dataset": "cifar10", "validate_on_test": True}, "model": {"name": "resnet32"},
                            "train": {"epochs": 2, "batch_size": 64, "lr": 0.05, "milestones": [], "amp": False,
                                      "select_best": True, **train}})


def _python(code: str, timeout=120, **kwargs):
    """Run ``code`` in a fresh interpreter at the repository root."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO)}, **kwargs)


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):          # unpickling this would create the marker file
        return (os.system, (f"touch {self.marker}",))


# --- tampered and damaged files -------------------------------------------------------------

def test_malicious_cifar_file_is_refused_and_runs_nothing(tmp_path):
    folder = write_synthetic_cifar("cifar10", tmp_path, train_per_class=2, test_per_class=2)
    marker = tmp_path / "pwned"
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": _RunsCode(marker), "labels": [0]}, f)
    with pytest.raises(CifarFormatError, match="refusing to load global posix.system") as err:
        load_cifar("cifar10", tmp_path, train=False)
    assert str(folder / "test_batch") in str(err.value) and not marker.exists()


def test_malicious_checkpoint_is_refused_and_runs_nothing(tiny_root, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    marker = tmp_path / "pwned"
    torch.save({"model": _RunsCode(marker), "epoch": 0}, run / "last.pt")
    with pytest.raises(CheckpointError, match="not a checkpoint this project wrote") as err:
        run_experiment(_cfg(), run, tiny_root, progress=False)
    assert "Delete it to restart" in str(err.value) and not marker.exists()
    assert not (run / "record.json").exists()


def _truncate(folder):
    data = (folder / "test_batch").read_bytes()
    (folder / "test_batch").write_bytes(data[:len(data) // 2])


def _rewrite(folder, change):
    with open(folder / "test_batch", "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    change(entry)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(entry, f)


@pytest.mark.parametrize("damage, expected", [
    (_truncate, "damaged or not a CIFAR file"),
    (lambda d: _rewrite(d, lambda e: e.update(data=e["data"][:, :3000])), "must be uint8 N x 3072"),
    (lambda d: _rewrite(d, lambda e: e.update(data=e["data"].astype(np.float32))), "must be uint8 N x 3072"),
    (lambda d: _rewrite(d, lambda e: e.update(labels=[*e["labels"][:-1], 10])), "labels must lie in 0..9, found 0..10"),
    (lambda d: _rewrite(d, lambda e: e.update(labels=[-1, *e["labels"][1:]])), "labels must lie in 0..9"),
    (lambda d: _rewrite(d, lambda e: e.update(labels=e["labels"][:-1])), "images but labels of shape"),
    (lambda d: _rewrite(d, lambda e: e.pop("labels")), "missing entry 'labels'"),
])
def test_damaged_data_file_names_its_path(tmp_path, damage, expected):
    folder = write_synthetic_cifar("cifar10", tmp_path, train_per_class=2, test_per_class=2)
    damage(folder)
    with pytest.raises(CifarFormatError, match=expected) as err:
        load_cifar("cifar10", tmp_path, train=False)
    assert str(folder / "test_batch") in str(err.value)


# --- kills, divergence ------------------------------------------------------------------------

KILL_AT_REPLACE = """
    import os, signal, sys
    from pathlib import Path
    target, nth = sys.argv[1], int(sys.argv[2])
    seen, real_replace = [], os.replace

    def replace(src, dst):        # die, as under SIGKILL, just before the nth rename onto `target`
        if Path(dst).name == target:
            seen.append(dst)
            if len(seen) == nth:
                os.kill(os.getpid(), signal.SIGKILL)
        real_replace(src, dst)

    os.replace = replace
    from tests.test_faults import _cfg
    from common.experiment import run_experiment
    run_experiment(_cfg(), sys.argv[3], sys.argv[4], progress=False)
"""


@pytest.fixture(scope="module")
def uninterrupted(tiny_root, tmp_path_factory):
    return run_experiment(_cfg(), tmp_path_factory.mktemp("whole") / "run", tiny_root, progress=False)


@pytest.mark.parametrize("target, nth", [("best.pt", 1), ("last.pt", 1), ("last.pt", 2), ("record.json", 1)])
def test_kill_between_writes_leaves_a_folder_the_next_run_finishes(tiny_root, tmp_path, uninterrupted, target, nth):
    run = tmp_path / "run"
    killed = subprocess.run([sys.executable, "-c", textwrap.dedent(KILL_AT_REPLACE), target, str(nth), str(run),
                             str(tiny_root)], cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (run / "record.json").exists() and read_records(tmp_path) == []   # the report sees no half run
    rec = run_experiment(_cfg(), run, tiny_root, progress=False)                  # the next run finishes it
    assert [row["epoch"] for row in rec["history"]] == [1, 2]
    assert [json.loads(line)["epoch"] for line in (run / "log.jsonl").read_text().splitlines()] == [1, 2]
    assert rec["metrics"]["test"]["accuracy"] == uninterrupted["metrics"]["test"]["accuracy"]
    assert [r["run_dir"] for r in read_records(tmp_path)] == [str(run)]
    assert not (run / "last.pt").exists() and not (run / "best.pt").exists()


def test_non_finite_loss_leaves_no_record(tiny_root, tmp_path):
    def diverging(ctx):
        step, hooks = default_step(ctx)
        return (lambda *args: step(*args) * float("inf")), hooks

    with pytest.raises(NonFiniteLossError, match="epoch 1, batch 1"):
        run_experiment(_cfg(), tmp_path / "run", tiny_root, progress=False, build_step=diverging)
    assert not (tmp_path / "run" / "record.json").exists()
    with claim(tmp_path / "run"):      # and the run's claim was given back
        pass


# --- stale runs and foreign checkpoints ----------------------------------------------------------

def test_checkpoint_of_another_config_is_refused_with_the_change(tiny_root, tmp_path):
    def interrupted(ctx):
        step, hooks = default_step(ctx)

        def stop_in_epoch_2(model, images, labels, indices, epoch):
            if epoch == 1:
                raise KeyboardInterrupt
            return step(model, images, labels, indices, epoch)
        return stop_in_epoch_2, hooks

    with pytest.raises(KeyboardInterrupt):
        run_experiment(_cfg(), tmp_path / "run", tiny_root, progress=False, build_step=interrupted)
    with pytest.raises(CheckpointError) as err:
        run_experiment(_cfg(epochs=3), tmp_path / "run", tiny_root, progress=False)
    msg = str(err.value)
    assert "train.epochs: 2 -> 3" in msg and f"delete {tmp_path / 'run'}" in msg
    rec = run_experiment(_cfg(), tmp_path / "run", tiny_root, progress=False)   # the old config resumes
    assert len(rec["history"]) == 2


def test_finished_run_of_another_config_is_reported_stale(tiny_root, tmp_path, capsys):
    first = run_experiment(_cfg(epochs=1), tmp_path / "run", tiny_root, progress=False)
    with pytest.raises(StaleRunError, match=r"train.epochs: 1 -> 2"):
        run_experiment(_cfg(epochs=2), tmp_path / "run", tiny_root, progress=False)
    job = Job("run", _cfg(epochs=2), tmp_path / "run")
    run_jobs([job], tiny_root, progress=False)
    assert "STALE" in capsys.readouterr().out
    assert json.loads((tmp_path / "run" / "record.json").read_text())["finished"] == first["finished"]   # kept
    rerun = run_jobs([job], tiny_root, progress=False, rerun_stale=True)["run"]
    assert rerun["epochs"] == 2 and len(rerun["history"]) == 2


def test_a_config_key_added_later_does_not_make_finished_runs_stale(tiny_root, tmp_path):
    rec = run_experiment(_cfg(epochs=1), tmp_path / "run", tiny_root, progress=False)
    del rec["config"]["train"]["eval_every"], rec["config"]["data"]["profile"]   # as before those keys existed
    (tmp_path / "run" / "record.json").write_text(json.dumps(rec))
    assert finished_record(tmp_path / "run", _cfg(epochs=1))["finished"] == rec["finished"]
    with pytest.raises(StaleRunError):      # a default that differs from what ran still counts
        finished_record(tmp_path / "run", _cfg(epochs=1, eval_every=2))


# --- claims: concurrent grids, dead workers ------------------------------------------------------

def test_claimed_run_is_left_alone(tiny_root, tmp_path):
    (tmp_path / "run").mkdir()
    with claim(tmp_path / "run"):
        with pytest.raises(RunClaimedError):
            run_experiment(_cfg(), tmp_path / "run", tiny_root, progress=False)
    assert not (tmp_path / "run" / "record.json").exists()


def test_claim_of_a_dead_process_is_taken_over(tiny_root, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from filelock import FileLock; "
                               "lock = FileLock(sys.argv[1]); lock.acquire(); print('held', flush=True); time.sleep(120)",
                               str(run / "claim.lock")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    threading.Timer(2.0, holder.kill).start()          # the other worker dies mid-run
    records = run_jobs([Job("run", _cfg(epochs=1), run)], tiny_root, progress=False)
    holder.wait(timeout=30)
    out = capsys.readouterr().out
    assert "claimed by another process" in out and "waiting for run" in out
    assert records["run"]["epochs"] == 1 and (run / "record.json").exists()


CONCURRENT_GRID = """
    import sys
    from thesis_cifar100lt import grid
    grid.main(["--preset", "smoke", "--data", sys.argv[1], "--out", sys.argv[2], "--models", "mobilenet_v2",
               "--losses", "ce", "bs", "focal", "--train-sets", "long_tailed"])
"""


def test_two_concurrent_grids_train_each_run_once(tiny_root, tmp_path):
    workers = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(CONCURRENT_GRID), str(tiny_root), str(tmp_path)],
                                cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [w.communicate(timeout=300) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], [err for _, err in outputs]
    names = [f"mobilenet_v2__{loss}__long_tailed" for loss in ("ce", "bs", "focal")]
    for name in names:
        trained = 0
        for out, _ in outputs:
            block = out.split(f"] {name}\n", 1)[1].split("== ", 1)[0]
            trained += "skip" not in block and "claimed by another process" not in block
        assert trained == 1, (name, outputs)
        rec = json.loads((tmp_path / "smoke" / name / "record.json").read_text())
        assert rec["config"]["loss"]["name"] == name.split("__")[1] and len(rec["history"]) == 1


# --- unwritable results ------------------------------------------------------------------------

def test_read_only_results_folder_gives_a_clear_error(tiny_root, tmp_path, monkeypatch):
    results = tmp_path / "results"
    results.mkdir()
    results.chmod(0o555)
    if os.access(results, os.W_OK):     # root writes anyway: make the file system refuse, as a read-only one does
        def refuse(self, *args, **kwargs):
            raise PermissionError(13, "Permission denied", str(self))
        monkeypatch.setattr(Path, "mkdir", refuse)
    try:
        with pytest.raises(ResultsNotWritableError, match="is not writable .*Permission denied.*another --out"):
            run_experiment(_cfg(), results / "run", tiny_root, progress=False)
    finally:
        results.chmod(0o755)


# --- a full disk ---------------------------------------------------------------------------------

def test_full_disk_at_last_pt_keeps_the_previous_one_and_the_run_resumes(tiny_root, tmp_path, monkeypatch, uninterrupted):
    """The second epoch's last.pt fails as torch fails on a full disk; the error is one message
    naming the folder, the first epoch's last.pt is intact, and the next run finishes from it."""
    from common import engine

    run, real_save, calls = tmp_path / "run", torch.save, []

    def save(obj, f, *args, **kwargs):
        if Path(f).name == "last.tmp":
            calls.append(f)
            if len(calls) == 2:
                Path(f).write_bytes(b"PK\x03\x04 half a zip")       # what a full disk leaves behind
                raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4 vs 0")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(engine.torch, "save", save)
    with pytest.raises(engine.WriteFailedError) as err:
        run_experiment(_cfg(), run, tiny_root, progress=False)
    message = str(err.value)
    assert f"could not write last.pt in {run}: the disk is full" in message and "previous last.pt is intact" in message
    assert "\n" not in message and isinstance(err.value, CheckpointError)           # one line, a RUN_ERRORS member
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 0 and not (run / "last.tmp").exists()
    monkeypatch.setattr(engine.torch, "save", real_save)                           # space freed
    rec = run_experiment(_cfg(), run, tiny_root, progress=False)
    assert [row["epoch"] for row in rec["history"]] == [1, 2]
    assert rec["metrics"]["test"]["accuracy"] == uninterrupted["metrics"]["test"]["accuracy"]


def test_damaged_record_of_a_finished_run_is_one_line_naming_it_and_the_fix(tiny_root, tmp_path):
    import yaml

    run, cfg = tmp_path / "run", _cfg(epochs=1, select_best=False)
    run_experiment(cfg, run, tiny_root, progress=False)
    (run / "record.json").write_text('{"config": {"data": ')                   # cut short
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    done = subprocess.run([sys.executable, "-m", "common.experiment", str(config), "--out", str(run), "--data",
                           str(tiny_root)], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert f"error: {run / 'record.json'} is damaged (JSONDecodeError" in done.stderr
    assert f"delete its folder {run}" in done.stderr


def test_a_record_that_breaks_the_schema_is_damaged_and_a_writer_cannot_write_one(tmp_path):
    from common.runstore import DamagedRecordError, read_record, write_record

    path = write_record(tmp_path / "run", {"model": {}}, {"test": {"accuracy": 0.5}}, "2026-01-01T00:00:00")
    record = json.loads(path.read_text())
    assert read_record(path) == record and len(record["run_id"]) == 32
    path.write_text(json.dumps({**record, "metrics": {"test": 0.5}}))              # a hand edit gone wrong
    with pytest.raises(DamagedRecordError, match=r"record.json is damaged \(field metrics.test: .*delete its folder"):
        read_record(path)
    with pytest.raises(ValueError, match="epochs"):                                 # caught before it is written
        write_record(tmp_path / "other", {}, {}, "2026-01-01T00:00:00", epochs="two")
    assert not (tmp_path / "other" / "record.json").exists()


def test_a_write_that_fails_for_another_reason_does_not_blame_the_disk(tmp_path):
    from common import engine

    with pytest.raises(engine.WriteFailedError) as err:
        engine.save_atomic({"epoch": 0}, tmp_path / "gone" / "last.pt")      # its folder does not exist
    message = str(err.value)
    assert f"could not write last.pt in {tmp_path / 'gone'}: RuntimeError: " in message
    assert "disk" not in message and "MiB free" not in message and "Fix that and run again" in message
