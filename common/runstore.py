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
import sys
import uuid
from pathlib import Path

import numpy as np

from .engine import environment, now

RECORD, PREDICTIONS = "record.json", "predictions.npz"


class DamagedRecordError(RuntimeError):
    """A ``record.json`` that cannot be read."""


def read_record(path) -> dict:
    """A run's ``record.json``; a damaged one raises :class:`DamagedRecordError` naming the file and the fix."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
        return record
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


def write_record(out_dir, config: dict, metrics: dict, started: str, **extra) -> Path:
    """``record.json``: everything a report needs to place and label this run."""
    record = {"config": config, "run_id": uuid.uuid4().hex, "started": started, "finished": now(),
              "environment": environment(), "metrics": metrics, **extra}
    path = Path(out_dir) / RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1, default=_jsonable))
    os.replace(tmp, path)
    return path


def _jsonable(obj):
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if hasattr(obj, "model_dump"):   # a pydantic config section
        return obj.model_dump(mode="json")
    return str(obj)


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
