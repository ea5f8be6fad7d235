"""Runs computed from other runs' outputs, training nothing: ensembles of members' saved test
predictions, post-hoc changes to a kept model.

A derived run's ``record.json`` names the runs it was computed from (``sources``: folder and
``run_id`` each); it is recomputed when one of them was re-trained since, and skipped otherwise.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from .engine import now, write_record
from .experiment import claim, load_predictions, save_predictions, source_record
from .metrics import evaluate_predictions


def derived_run(out_dir, sources: dict[str, Path], compute: Callable[[dict], dict]) -> dict:
    """``out_dir``'s record, recomputed when missing or when a source run changed since.

    ``compute(records of the sources by name) -> dict`` returns ``config``, ``metrics``, ``predictions`` (the
    arrays for ``predictions.npz``) and any further record entries (``preset``, ``epochs``,
    ``data``, ...)."""
    out_dir = Path(out_dir)
    records = {name: source_record(Path(folder), out_dir) for name, folder in sources.items()}
    stamp = {name: {"run": str(folder), "run_id": records[name].get("run_id")} for name, folder in sources.items()}

    def current() -> dict | None:
        if (out_dir / "record.json").exists():
            record = json.loads((out_dir / "record.json").read_text())
            if record.get("sources") == stamp:
                return record
        return None

    if (record := current()) is not None:
        print(f"skip {out_dir}: finished")
        return record
    out_dir.mkdir(parents=True, exist_ok=True)
    with claim(out_dir, wait=True):
        if (record := current()) is not None:      # computed by another process meanwhile
            return record
        started = now()
        result = compute(records)
        config, metrics, predictions = result.pop("config"), result.pop("metrics"), result.pop("predictions")
        save_predictions(out_dir / "predictions.npz", predictions)
        write_record(out_dir, config, metrics, started, sources=stamp, **result)
    return json.loads((out_dir / "record.json").read_text())


def average_ensemble(out_dir, members: dict[str, Path], groups=("shot",), n_bins: int = 15) -> dict:
    """The equal-weight mean of the members' softmax outputs on every test set (seed 002's Fig 7)."""
    def compute(records):
        first = next(iter(records.values()))
        group_counts = first.get("group_counts", first["train_counts"])   # the long-tailed profile, not a bag's
        predictions, metrics = {}, {}
        member_preds = {name: load_predictions(folder) for name, folder in members.items()}
        for test_set in next(iter(member_preds.values())):
            probs = [member_preds[name][test_set][0] for name in members]
            labels = member_preds[next(iter(members))][test_set][1]
            if any(not np.array_equal(member_preds[name][test_set][1], labels) for name in members):
                raise ValueError(f"the members of {out_dir} were tested on different {test_set} sets")
            mean = np.mean(probs, axis=0).astype(np.float32)
            predictions[f"{test_set}_probs"], predictions[f"{test_set}_labels"] = mean, labels
            metrics[test_set] = evaluate_predictions(mean, labels, group_counts, groups, n_bins)
        return {"config": {"ensemble": "mean of softmax outputs", "members": {n: str(f) for n, f in members.items()}},
                "metrics": metrics, "predictions": predictions, "preset": first.get("preset"),
                "epochs": first.get("epochs"), "data": first.get("data"), "classes": first.get("classes"),
                "train_counts": first.get("train_counts")}

    return derived_run(out_dir, members, compute)
