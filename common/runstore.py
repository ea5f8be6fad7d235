"""The run store: what a run folder holds and how it is read and written.

A finished run's folder holds ``record.json`` (config, metrics, provenance, history: written
last, so a folder with one has finished), ``predictions.npz`` (test probabilities and labels),
``log.jsonl`` and ``config.yaml``, and ``weights.pt`` when other runs start from it; an
unfinished one holds ``last.pt`` (:mod:`common.engine`). The runs of one preset live in
``<out>/<preset>/``, those of another training seed in ``<out>/<preset>@seed<S>/``.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import yaml
from filelock import FileLock, Timeout
from pydantic import BaseModel, ConfigDict, ValidationError

from .config import (ConfigError, ExperimentConfig, config_diff, config_hash, config_record, upgrade_config,
                     validate_config)
from .datasets import num_classes_of
from .engine import CheckpointError, environment, load_checkpoint, now, same_run
from .losses import build_loss
from .models import LearnableWeightScaling, build_model, scale_logits
from .precision import Numerics

RECORD, PREDICTIONS = "record.json", "predictions.npz"


class RunRecord(BaseModel):
    """What ``record.json`` holds. The one writer (:func:`write_record`) and the one reader
    (:func:`read_record`) check it; a study's own fields (``tau_sweep``, ``fitted_on``, ...)
    ride along as extra keys. Records written before a field existed lack it, hence the Nones."""
    model_config = ConfigDict(extra="allow")

    config: dict                                # the resolved config (an ensemble's: its members)
    run_id: str | None = None                   # changes whenever the run is trained again
    started: str | None = None
    finished: str                               # ISO time the record was written
    environment: dict | None = None             # versions, device, threads
    metrics: dict[str, dict]                    # per test set: accuracy, per-class and group metrics, ECE
    preset: str | None = None
    epochs: int | None = None
    data: str | None = None                     # the data's provenance, as tables label it
    data_root: str | None = None
    config_hash: str | None = None
    classes: list[str] | None = None
    train_counts: list[int] | None = None
    group_counts: list[int] | None = None       # per-class counts that define many / medium / few
    train_indices_sha256: str | None = None
    history: list[dict] | None = None           # one entry per epoch, as log.jsonl
    numerics: dict | None = None                # precision and memory format of its last epoch
    logit_scale: float | None = None            # what the model multiplied its logits by (its loss's; LDAM: s)
    segments: list[dict] | None = None          # epoch ranges per numerics and device (common.engine.training_segments)
    pretrained_weights: dict | None = None      # where pretrained weights came from
    parent: dict | None = None                  # the run it started from (model.init_from) and its run_id
    sources: dict | None = None                 # a derived run's source runs and their run_ids


class DamagedRecordError(RuntimeError):
    """A ``record.json`` that cannot be read."""


class RunClaimedError(RuntimeError):
    """Another process holds this run's claim (it is training it now)."""


class StaleRunError(RuntimeError):
    """The run folder holds a finished run of another config."""


class ResultsNotWritableError(RuntimeError):
    pass


class ParentNotFinishedError(RuntimeError):
    """``model.init_from`` names a run that has not finished (or kept no weights)."""


def read_record(path) -> dict:
    """A run's ``record.json``; a damaged one raises :class:`DamagedRecordError` naming the file and the fix."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
        RunRecord.model_validate(record)
        return record
    except ValidationError as err:
        first = err.errors()[0]
        raise DamagedRecordError(
            f"{path} is damaged (field {'.'.join(map(str, first['loc']))}: {first['msg']}): restore it (`git checkout "
            f"-- {path}` if it is committed) or delete its folder {path.parent} to run that run again") from None
    except (OSError, ValueError) as err:      # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise DamagedRecordError(
            f"{path} is damaged ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'unreadable'}): "
            f"restore it (`git checkout -- {path}` if it is committed) or delete its folder {path.parent} "
            f"to run that run again") from None


def read_records(root) -> list[dict]:
    """Every ``record.json`` under ``root`` (finished runs only), with its folder as ``run_dir``;
    a damaged one is named in a warning and left out."""
    records = []
    for path in sorted(Path(root).rglob(RECORD)):
        try:
            rec = read_record(path)
        except DamagedRecordError as err:
            print(f"warning: left out: {err}", file=sys.stderr)
            continue
        rec["run_dir"] = str(path.parent)
        records.append(rec)
    return records


def write_record(out_dir, config: dict, metrics: dict, started: str, device=None, **extra) -> Path:
    """``record.json``: everything a report needs to place and label this run (trained on ``device``)."""
    record = {"config": config, "run_id": uuid.uuid4().hex, "started": started, "finished": now(),
              "environment": environment(device), "metrics": metrics, **extra}
    text = record_text(record)
    RunRecord.model_validate_json(text)         # a writer's mistake fails here, not in a later report
    path = Path(out_dir) / RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def record_text(record: dict) -> str:
    """``record`` as JSON, a key a line, each list of plain values (a per-class metric, a row of
    the confusion matrix) on one line: under half the size of ``indent=1``, which put every
    number of a 100-class confusion matrix on a line of its own."""
    return _json_lines(json.loads(json.dumps(record, default=_jsonable)), "")


def _json_lines(value, pad: str) -> str:
    inner = pad + " "
    if isinstance(value, dict) and value:
        items = (f"{inner}{json.dumps(key)}: {_json_lines(v, inner)}" for key, v in value.items())
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        return "[\n" + ",\n".join(inner + _json_lines(v, inner) for v in value) + f"\n{pad}]"
    return json.dumps(value)


def _jsonable(obj):
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if hasattr(obj, "model_dump"):   # a pydantic config section
        return obj.model_dump(mode="json")
    return str(obj)


def record_config(record: dict) -> dict:
    """A finished run's config under today's schema (:func:`common.config.upgrade_config`), so
    adding a config key does not make every finished run stale."""
    return upgrade_config(record["config"])


def saved_run(run_dir: Path) -> tuple[ExperimentConfig, dict]:
    """The config a run folder was trained under and its record: the record's, or (still
    training or interrupted) the ``config.yaml`` written when it started and no record (``{}``)."""
    run_dir = Path(run_dir)
    if (run_dir / RECORD).exists():
        record = read_record(run_dir / RECORD)
        cfg = validate_config(record_config(record))
        cfg._preset = record.get("preset")
        return cfg, record
    if (run_dir / "config.yaml").exists():
        return validate_config(yaml.safe_load((run_dir / "config.yaml").read_text())), {}
    raise ConfigError(f"{run_dir} is not a run folder (no record.json or config.yaml)")


def load_trained_model(cfg: ExperimentConfig, weights) -> torch.nn.Module:
    """The model ``cfg`` builds (no pretrained download: the file holds every weight), holding
    the weights of ``weights``: a run's kept ``weights.pt`` or one of its checkpoints."""
    num_classes = num_classes_of(cfg.data)
    model = build_model(cfg.model.name, num_classes, **cfg.model.kwargs)
    if cfg.model.lws:
        model.classifier = LearnableWeightScaling(model.classifier, num_classes)
    scale_logits(model, build_loss(class_counts=[1] * num_classes, **cfg.loss.model_dump()).logit_scale)
    try:
        model.load_state_dict(load_checkpoint(Path(weights))["model"])
    except (KeyError, RuntimeError) as err:
        raise CheckpointError(f"{weights} does not hold this run's model ({type(err).__name__}: "
                              f"{str(err).splitlines()[0]})") from err
    return model


def source_record(folder: Path, needed_by) -> dict:
    """The record of the finished run ``folder``, which ``needed_by`` starts from or is computed
    from; raises :class:`ParentNotFinishedError` if it has not finished."""
    if not (folder / RECORD).exists():
        raise ParentNotFinishedError(f"{needed_by} starts from {folder}, which has not finished: run it first")
    return read_record(folder / RECORD)


def parent_record(out_dir: Path, cfg: ExperimentConfig) -> tuple[Path, dict]:
    """The folder and record of the run ``cfg.model.init_from`` names (beside ``out_dir``, or a
    path); raises :class:`ParentNotFinishedError` unless it finished and kept its weights."""
    folder = out_dir.parent / cfg.model.init_from
    record = source_record(folder, out_dir)
    if not (folder / "weights.pt").exists():
        raise ParentNotFinishedError(f"{folder} finished without keeping its weights (weights.pt), which {out_dir} "
                                     f"starts from: re-run it with train.keep_weights, or copy its weights.pt there")
    return folder, record


def finished_record(out_dir: Path, cfg: ExperimentConfig) -> dict | None:
    """The run's ``record.json`` if it finished under ``cfg``; raises :class:`StaleRunError` if
    it finished under another config; None if it has not finished."""
    path = out_dir / RECORD
    if not path.exists():
        return None
    record = read_record(path)
    then, current = record_config(record), config_record(cfg)
    changes = config_diff(then, current) if config_hash(then) != config_hash(current) else []
    parent = record.get("parent")
    if parent and (Path(parent["run"]) / RECORD).exists():
        now_parent = read_record(Path(parent["run"]) / RECORD)
        if now_parent["run_id"] != parent["run_id"]:
            changes.append(f"its parent run {parent['run']} was re-trained since (finished {now_parent['finished']})")
    if not changes:
        return record
    raise StaleRunError(f"{path} was written under another config ({'; '.join(changes[:4]) or 'an older schema'}"
                        f"{'; ...' if len(changes) > 4 else ''}). It is kept as it is: re-run it with --rerun-stale "
                        f"(or delete {out_dir}).")


def prepare_folder(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write-probe-{os.getpid()}"      # per process: workers share run folders
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise ResultsNotWritableError(f"results folder {out_dir} is not writable ({err.strerror or err}); "
                                      f"pass another --out or fix its permissions") from err


CLAIM, CLAIM_OWNER = "claim.lock", "claim.owner"


@contextmanager
def claim(out_dir: Path, wait: bool = False):
    """Hold the run's claim (``claim.lock``) while the block runs, naming this host and process in
    ``claim.owner`` (:func:`claim_owner`). Without ``wait`` a claim held by another process raises
    :class:`RunClaimedError`; a dead process's claim is free (the operating system drops its lock)."""
    lock = FileLock(out_dir / CLAIM)
    try:
        lock.acquire(timeout=-1 if wait else 0)
    except Timeout:
        raise RunClaimedError(f"{out_dir} is being trained by another process") from None
    owner = out_dir / CLAIM_OWNER
    try:
        owner.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": now()}))
        yield
    finally:
        owner.unlink(missing_ok=True)
        lock.release()


def claim_owner(out_dir: Path) -> dict | None:
    """``{"host", "pid", "since"}`` of the process holding the run's claim (``{}`` if it wrote none),
    None when nobody holds it."""
    path = Path(out_dir) / CLAIM
    if not path.exists():          # never claimed (and --list creates no lock files)
        return None
    lock = FileLock(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        try:
            return json.loads((Path(out_dir) / CLAIM_OWNER).read_text())
        except (OSError, ValueError):     # a claim taken before owners were written
            return {}
    lock.release()
    return None


def run_state(run_dir: Path, cfg: ExperimentConfig | None = None) -> str:
    """One line on where a run stands: finished (its top-1), finished under another config than
    ``cfg`` (stale), at epoch k of N (and the numerics its ``last.pt`` was written in), claimed by
    another process (host, pid), or not started (:func:`run_progress`)."""
    return run_progress(run_dir, cfg)[0]


def run_progress(run_dir: Path, cfg: ExperimentConfig | None = None) -> tuple[str, int | None]:
    """(:func:`run_state`'s line, the epochs a run under ``cfg`` has behind it): None once it
    finished under ``cfg``; its ``last.pt``'s epoch while in flight; 0 when it has to start from
    scratch (not started, stale, a damaged record, or a ``last.pt`` of another config, which the
    run would refuse)."""
    run_dir = Path(run_dir)
    if (run_dir / RECORD).exists():
        try:
            record = finished_record(run_dir, cfg) if cfg is not None else read_record(run_dir / RECORD)
        except StaleRunError:
            return "finished under another config (stale)", 0
        except DamagedRecordError:
            return "damaged record.json", 0
        metrics = next(iter(record["metrics"].values()), {})
        return (f"finished (top-1 {100 * metrics['accuracy']:.2f})" if "accuracy" in metrics else "finished"), None
    states, done, owner = [], 0, claim_owner(run_dir)
    if (run_dir / "last.pt").exists():
        ckpt = load_checkpoint(run_dir / "last.pt", mmap=True)     # a state line needs no copy of the weights
        saved, numerics = ckpt["run_config"], ckpt.get("numerics")
        epoch, epochs = ckpt["epoch"] + 1, saved["train"]["epochs"]
        ours = cfg is None or same_run(saved, config_record(cfg))
        done = min(epoch, epochs) if ours else 0
        states.append(f"at epoch {epoch} of {epochs} ("
                      + (Numerics(**numerics).describe() if numerics else "numerics not recorded") + ")"
                      + ("" if ours else ", a last.pt of another config: the run would start over"))
    if owner is not None:
        states.append("claimed by another process ("
                      + (f"host {owner['host']}, pid {owner['pid']})" if owner else "host and pid not recorded)"))
    return "; ".join(states) or "not started", done


def save_predictions(path: Path, arrays: dict) -> None:
    """``<test set>_probs`` (float32 N x C) and ``<test set>_labels`` of a finished run, so
    tables, ensembles and re-analysis need no retraining (:func:`load_predictions`)."""
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def load_predictions(run_dir) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Test set name -> (probabilities, labels) of a finished run."""
    with np.load(Path(run_dir) / PREDICTIONS) as f:
        return {k[:-len("_probs")]: (f[k], f[k[:-len("_probs")] + "_labels"]) for k in f.files if k.endswith("_probs")}


def seed_root(out, preset: str, seed: int | None, own_seed: int | None) -> Path:
    """Where the runs of one training seed go: ``out/<preset>`` for the configs' own seed (or
    None), ``out/<preset>@seed<S>`` for another."""
    return Path(out) / (preset if seed is None or seed == own_seed else f"{preset}@seed{seed}")


def seed_roots(runs_dir, preset: str, seeds=None, own_seed: int | None = None) -> dict[str, Path]:
    """The results roots of ``preset``'s seeds (:func:`seed_root`) that exist, by name: those of
    ``seeds`` (``own_seed``: the configs' seed, kept in ``runs_dir/<preset>``), or all."""
    runs_dir = Path(runs_dir)
    if seeds is not None:
        roots = [seed_root(runs_dir, preset, s, own_seed) for s in seeds]
    else:
        roots = [runs_dir / preset, *sorted(runs_dir.glob(f"{preset}@seed*"))]
    return {root.name: root for root in roots if root.is_dir()} or {preset: runs_dir / preset}
