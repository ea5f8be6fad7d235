"""Runs computed from other runs' outputs, training nothing: ensembles of members' saved test
predictions (their mean, or a learned stacker), post-hoc changes to a kept model.

A derived run's ``record.json`` names the runs it was computed from (``sources``: folder and
``run_id`` each); it is recomputed when one of them was re-trained since, and skipped otherwise.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from sklearn.linear_model import LogisticRegression

from .engine import now
from .metrics import evaluate_predictions
from .runstore import claim, load_predictions, read_record, save_predictions, source_record, write_record


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
            record = read_record(out_dir / "record.json")
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
    return read_record(out_dir / "record.json")


def average_ensemble(out_dir, members: dict[str, Path], groups=("shot",), n_bins: int = 15) -> dict:
    """The equal-weight mean of the members' softmax outputs on every test set (seed 002's Fig 7)."""
    def compute(records):
        first = next(iter(records.values()))
        group_counts = first.get("group_counts", first["train_counts"])   # the long-tailed profile, not a bag's
        predictions, metrics = {}, {}
        member_preds = {name: load_predictions(folder) for name, folder in members.items()}
        for test_set in next(iter(member_preds.values())):
            probs = [member_preds[name][test_set][0] for name in members]
            labels = _same_labels({name: preds[test_set][1] for name, preds in member_preds.items()}, test_set)
            mean = np.mean(probs, axis=0).astype(np.float32)
            predictions[f"{test_set}_probs"], predictions[f"{test_set}_labels"] = mean, labels
            metrics[test_set] = evaluate_predictions(mean, labels, group_counts, groups, n_bins)
        return {"config": {"ensemble": "mean of softmax outputs", "members": {n: str(f) for n, f in members.items()}},
                "metrics": metrics, "predictions": predictions, **_provenance(first)}

    return derived_run(out_dir, members, compute)


def _provenance(record: dict) -> dict:
    """What a derived run's record repeats from its first source: budget, data, classes, counts."""
    return {key: record.get(key) for key in ("preset", "epochs", "data", "classes", "train_counts")}


def _same_labels(labels: dict[str, np.ndarray], what: str) -> np.ndarray:
    first = next(iter(labels.values()))
    if any(not np.array_equal(y, first) for y in labels.values()):
        raise ValueError(f"the members' {what} labels differ: they were not predicted on the same images")
    return first


def stacked_ensemble(out_dir, members: dict[str, Path], fold_runs: dict[str, list[Path]], C: float = 1.0,
                     groups=("shot",), n_bins: int = 15) -> dict:
    """A learned stacker: multinomial logistic regression on the members' concatenated softmax outputs.

    It is fitted on out-of-fold probabilities of the training set -- ``fold_runs[name][k]`` is
    member ``name`` trained without fold ``k`` (``data.folds`` / ``data.fold``), which predicted
    that fold -- and then applied to the test probabilities of the members trained on the whole
    set (scikit-learn's ``StackingClassifier`` scheme). Test labels only score the result. The
    classes are weighted inversely to their training counts (``class_weight="balanced"``): the
    meta-learner sees the long-tailed training distribution, the test set is balanced."""
    sources = dict(members) | {f"{name}/fold{k}": run for name, runs in fold_runs.items() for k, run in enumerate(runs)}

    def compute(records):
        first = records[next(iter(members))]
        held = {name: [load_predictions(run)["heldout_fold"] for run in fold_runs[name]] for name in members}
        fit_x = np.hstack([np.concatenate([probs for probs, _ in held[name]]) for name in members])
        fit_y = _same_labels({name: np.concatenate([y for _, y in held[name]]) for name in members}, "out-of-fold")
        meta = LogisticRegression(C=C, class_weight="balanced", max_iter=2000).fit(fit_x, fit_y)
        num_classes = len(first["classes"])
        member_preds = {name: load_predictions(folder) for name, folder in members.items()}
        predictions, metrics = {}, {}
        for test_set in member_preds[next(iter(members))]:
            labels = _same_labels({name: preds[test_set][1] for name, preds in member_preds.items()}, test_set)
            probs = np.zeros((len(labels), num_classes), dtype=np.float32)
            probs[:, meta.classes_] = meta.predict_proba(np.hstack([member_preds[n][test_set][0] for n in members]))
            predictions[f"{test_set}_probs"], predictions[f"{test_set}_labels"] = probs, labels
            metrics[test_set] = evaluate_predictions(probs, labels, first.get("group_counts", first["train_counts"]),
                                                     groups, n_bins)
        config = {"ensemble": "logistic regression on out-of-fold member probabilities",
                  "meta_learner": f"sklearn LogisticRegression(C={C:g}, class_weight='balanced')",
                  "folds": len(next(iter(fold_runs.values()))), "members": {n: str(f) for n, f in members.items()}}
        return {"config": config, "metrics": metrics, "predictions": predictions, "fitted_on": len(fit_y),
                **_provenance(first)}

    if set(fold_runs) != set(members) or len({len(runs) for runs in fold_runs.values()}) != 1:
        raise ValueError("stacked_ensemble needs the same number of fold runs for every member")
    return derived_run(out_dir, sources, compute)
