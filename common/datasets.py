"""A run's data from its config's ``data`` and ``train`` sections: the training, test and
validation sets (``build_datasets``), which images of the official files a run trains on
(``training_indices``, from the labels alone), and the augmentation and test transforms."""
from __future__ import annotations

import hashlib
from typing import Callable

import numpy as np

from . import data as D
from .config import ConfigError, DataConfig, ExperimentConfig


def thesis_split_from_config(labels, num_classes: int, dcfg: DataConfig) -> dict:
    """:func:`common.data.thesis_split` with the ``data`` section's sizes, imbalance and seed."""
    return D.thesis_split(labels, num_classes, dcfg.train_per_class, dcfg.test_per_class, dcfg.imb_factor,
                          dcfg.split_seed, dcfg.min_count)


def num_classes_of(dcfg: DataConfig) -> int:
    return dcfg.classes or D.cifar.LAYOUTS[dcfg.dataset].num_classes


def build_datasets(dcfg: DataConfig, root) -> dict:
    """Train images / labels (and their indices) / class counts, the test sets, and the validation set if any.

    ``split: standard``: train = long-tailed subset of the official train set (LDAM-DRW
    selection; ``imb_factor: null`` keeps it whole), test = the official test set; with
    ``folds`` / ``fold`` that fold of the training set is held out and predicted (``heldout_fold``).
    ``split: thesis``: seed 001's split of the official train set (see ``thesis_split``);
    ``train_set`` picks ``balanced`` or ``long_tailed``, the official test set validates,
    and the balanced and long-tailed test splits are the test sets.
    """
    train_x, train_y, classes = D.load_cifar(dcfg.dataset, root, train=True)
    test_x, test_y, _ = D.load_cifar(dcfg.dataset, root, train=False)
    if dcfg.classes:  # the first k classes, renumbered
        keep = list(range(dcfg.classes))
        idx, train_y = D.select_classes(train_y, keep)
        train_x = train_x[idx]
        idx, test_y = D.select_classes(test_y, keep)
        test_x, classes = test_x[idx], [classes[c] for c in keep]
    num_classes = len(classes)
    out = {"classes": classes, "num_classes": num_classes}
    if dcfg.split == "thesis":
        split = thesis_split_from_config(train_y, num_classes, dcfg)
        train_idx = split["lt_train" if dcfg.train_set == "long_tailed" else "train"]
        out["train"] = (train_x[train_idx], train_y[train_idx])
        out["train_indices"] = train_idx
        out["tests"] = {"balanced": (train_x[split["test"]], train_y[split["test"]]),
                        "long_tailed": (train_x[split["lt_test"]], train_y[split["lt_test"]])}
        out["val"] = (test_x, test_y)
        out["group_counts"] = split["lt_train_counts"]  # head/middle/tail follow the LT profile
    else:
        chosen = training_indices(train_y, num_classes, dcfg)
        out["group_counts"] = chosen["group_counts"]     # many / medium / few: the long-tailed profile
        out["train"] = (train_x[chosen["train"]], train_y[chosen["train"]])
        out["train_indices"] = chosen["train"]
        out["tests"] = {"test": (test_x, test_y)}
        for name in ("heldout_fold", "validation"):
            if chosen[name] is not None:
                out["tests"][name] = (train_x[chosen[name]], train_y[chosen[name]])
        out["val"] = (test_x, test_y) if dcfg.validate_on_test else None
    out["train_counts"] = D.class_counts(out["train"][1], num_classes).tolist()
    return out


def training_indices(train_y, num_classes: int, dcfg: DataConfig) -> dict:
    """Which images of the official training set a ``split: standard`` run trains on, from the
    labels alone: ``train`` (indices; re-sampled images repeated), ``heldout_fold`` (or None),
    ``validation`` (the held-out last ``val_per_class`` images of each class, or None) and
    ``group_counts`` (the long-tailed set's class counts, before folds and re-sampling)."""
    train_y = np.asarray(train_y)
    idx, validation = np.arange(len(train_y)), None
    if dcfg.val_per_class:
        per_class = [np.where(train_y == c)[0] for c in range(num_classes)]
        if min(len(p) for p in per_class) <= dcfg.val_per_class:
            raise ConfigError(f"data.val_per_class {dcfg.val_per_class} leaves a class with no training image "
                              f"(the smallest has {min(len(p) for p in per_class)})")
        validation = np.sort(np.concatenate([p[-dcfg.val_per_class:] for p in per_class]))
        idx = np.sort(np.concatenate([p[:-dcfg.val_per_class] for p in per_class]))
    if dcfg.max_per_class:
        idx = np.sort(np.concatenate([idx[train_y[idx] == c][:dcfg.max_per_class] for c in range(num_classes)]))
    if dcfg.imb_factor:
        num_max = int(np.bincount(train_y[idx]).max())
        counts = D.longtail_counts(num_max, num_classes, dcfg.imb_factor, dcfg.profile, min_count=dcfg.min_count)
        idx = idx[D.longtail_indices(train_y[idx], counts, dcfg.lt_seed)]
    group_counts = D.class_counts(train_y[idx], num_classes).tolist()
    held = None
    if dcfg.folds:
        kept, held = D.fold_split(train_y[idx], dcfg.folds, dcfg.fold, dcfg.lt_seed)
        idx, held = idx[kept], idx[held]
    return {"train": idx[_resample(train_y[idx], dcfg)], "heldout_fold": held, "validation": validation,
            "group_counts": group_counts}


def planned_training_indices(dcfg: DataConfig) -> dict:
    """:func:`training_indices` on stand-in labels with the official per-class counts: the sizes of
    a run's training set without its data files (for plans)."""
    num_classes = num_classes_of(dcfg)
    labels = np.repeat(np.arange(num_classes), D.cifar.LAYOUTS[dcfg.dataset].train_per_class)
    return training_indices(labels, num_classes, dcfg)


def planned_sizes(dcfg: DataConfig) -> tuple[int, int, int]:
    """``(trained, evaluated, validated)`` image counts of a run from its split's definition
    alone (for plans): its training set, its test sets (scored once at the end) and the set it
    validates on after every epoch."""
    num_classes = num_classes_of(dcfg)
    layout = D.cifar.LAYOUTS[dcfg.dataset]
    official_test = num_classes * layout.test_per_class
    if dcfg.split == "thesis":
        split = thesis_split_from_config(np.repeat(np.arange(num_classes), layout.train_per_class), num_classes, dcfg)
        trained = split["lt_train" if dcfg.train_set == "long_tailed" else "train"]
        return len(trained), len(split["test"]) + len(split["lt_test"]), official_test
    chosen = planned_training_indices(dcfg)
    held = sum(len(chosen[k]) for k in ("heldout_fold", "validation") if chosen[k] is not None)
    return len(chosen["train"]), official_test + held, official_test if dcfg.validate_on_test else 0


def _resample(y, dcfg: DataConfig) -> np.ndarray:
    """Indices of seed 002's artificial balancing, or of one learner's bag of its balanced bagging."""
    if dcfg.balance_threshold:
        return D.artificial_balance(y, dcfg.balance_threshold, seed=dcfg.lt_seed)
    if dcfg.bag_threshold:
        bags = D.balanced_bagging(y, dcfg.bag_threshold, seed=dcfg.lt_seed)
        if dcfg.bag_index >= len(bags):
            raise ConfigError(f"data.bag_index {dcfg.bag_index}: bag_threshold {dcfg.bag_threshold} gives "
                              f"{len(bags)} learners (0-{len(bags) - 1}) for this training set")
        return bags[dcfg.bag_index]
    return np.arange(len(y))


def transforms_from_config(cfg: ExperimentConfig) -> tuple[Callable, Callable]:
    """``(augment, test_transform)`` from the ``train`` section: ``augment(name)`` builds that
    training augmentation; both take uint8 batches to normalised float batches."""
    t = cfg.train
    mean, std = D.NORMALISATIONS[t.normalize or cfg.data.dataset]
    return (lambda name: D.build_augment(name, mean, std, t.size, t.resize_first)), D.build_augment("none", mean, std, t.size)


def indices_hash(indices) -> str:
    """sha256 of the training indices (int64, in training-set order, re-sampled ones repeated):
    two machines that trained on the same images of the (class-selected) training set agree."""
    return hashlib.sha256(np.asarray(indices, dtype="<i8").tobytes()).hexdigest()
