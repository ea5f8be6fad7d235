"""Evaluation metrics on numpy arrays of labels, predictions and probabilities."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix as _sk_confusion_matrix
from sklearn.metrics import f1_score, precision_recall_fscore_support

from .data.longtail import GROUP_NAMES, class_groups


def accuracy(labels, preds) -> float:
    labels, preds = np.asarray(labels), np.asarray(preds)
    return float((labels == preds).mean()) if len(labels) else float("nan")


def per_class_accuracy(labels, preds, num_classes: int) -> np.ndarray:
    """Recall of each class (nan for a class absent from ``labels``)."""
    labels, preds = np.asarray(labels), np.asarray(preds)
    hits = np.bincount(labels[labels == preds], minlength=num_classes)
    totals = np.bincount(labels, minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, hits / np.maximum(totals, 1), np.nan)


def classification_report(labels, preds, num_classes: int) -> dict:
    """Per-class precision / recall / F1 / support plus macro and weighted F1 (scikit-learn)."""
    classes = list(range(num_classes))
    p, r, f, s = precision_recall_fscore_support(labels, preds, labels=classes, zero_division=0)
    return {
        "precision": p.tolist(), "recall": r.tolist(), "f1": f.tolist(), "support": s.tolist(),
        "macro_f1": float(f1_score(labels, preds, labels=classes, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(labels, preds, labels=classes, average="weighted", zero_division=0)),
    }


def confusion_matrix(labels, preds, num_classes: int, normalize: str | None = None) -> np.ndarray:
    """Rows are true classes; ``normalize='true'`` gives per-row recall."""
    return _sk_confusion_matrix(labels, preds, labels=list(range(num_classes)), normalize=normalize)


def group_accuracy(labels, preds, train_counts, scheme: str = "shot") -> dict:
    """Accuracy over the test samples of each class group.

    ``shot``: many (> 100 training images) / medium (20-100) / few (< 20);
    ``thirds``: head / middle / tail thirds of the classes by training count.
    Accuracy is over samples (as LDAM-DRW's ``shot_acc`` for a balanced test set and as the
    thesis's head/middle/tail test subsets); a group with no test sample gives nan.
    """
    labels, preds = np.asarray(labels), np.asarray(preds)
    groups = class_groups(train_counts, scheme)[labels]
    return {name: accuracy(labels[groups == g], preds[groups == g])
            for g, name in enumerate(GROUP_NAMES[scheme])}


def expected_calibration_error(probs, labels, n_bins: int = 15) -> float:
    """ECE (Guo et al. 2017): confidence = max probability, ``n_bins`` equal-width bins on
    (0, 1], ``sum_b |B_b| / N * |acc(B_b) - conf(B_b)|``."""
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels)
    conf, pred = probs.max(1), probs.argmax(1)
    correct = (pred == labels).astype(np.float64)
    bins = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        in_bin = bins == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
    return float(ece)


def evaluate_predictions(probs, labels, train_counts=None, groups=("shot",), n_bins: int = 15) -> dict:
    """All metrics for one test set, as plain JSON-ready numbers (fractions, not percent)."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    num_classes = probs.shape[1]
    preds = probs.argmax(1)
    out = {"n": int(len(labels)), "accuracy": accuracy(labels, preds),
           "ece": expected_calibration_error(probs, labels, n_bins),
           "per_class_accuracy": per_class_accuracy(labels, preds, num_classes).tolist(),
           "confusion_matrix": confusion_matrix(labels, preds, num_classes).tolist()}
    out.update(classification_report(labels, preds, num_classes))
    if train_counts is not None:
        for scheme in groups:
            out.update(group_accuracy(labels, preds, train_counts, scheme))
    return out
