"""Long-tailed subsets, class subsets, the thesis split, cross-fitting folds and class groups."""
from __future__ import annotations

import math
import warnings

import numpy as np
from sklearn.model_selection import StratifiedKFold


LONGTAIL_PROFILES = ("exp", "step", "pareto")


def longtail_counts(num_max: int, num_classes: int, imb_factor: float, profile: str = "exp",
                    *, min_count: int = 0) -> list[int]:
    """Images per class for a long-tailed set; ``imb_factor`` is n_min / n_max (0.01: ratio 100).

    ``exp``    : ``int(num_max * imb_factor ** (i / (C - 1)))`` (Cao et al. 2019, LDAM-DRW
                 ``IMBALANCECIFAR10.get_img_num_per_cls``).
    ``step``   : first half of the classes ``num_max``, second half ``int(num_max * imb_factor)``
                 (same code, ``imb_type='step'``).
    ``pareto`` : power law ``int(num_max * (i + 1) ** -a)`` with ``a`` chosen so that the last
                 class gets ``num_max * imb_factor`` (Zipf/Pareto profile as in ImageNet-LT).
    ``min_count`` floors every class (the thesis keeps at least one test image per class).
    """
    if not 0 < imb_factor <= 1:
        raise ValueError(f"imb_factor is n_min / n_max and must be in (0, 1], got {imb_factor}")
    if profile == "exp":
        counts = [int(num_max * imb_factor ** (i / (num_classes - 1))) for i in range(num_classes)]
    elif profile == "step":
        half = num_classes // 2
        counts = [int(num_max)] * half + [int(num_max * imb_factor)] * (num_classes - half)
    elif profile == "pareto":
        a = -math.log(imb_factor) / math.log(num_classes) if num_classes > 1 else 0.0
        counts = [int(num_max * (i + 1) ** -a + 1e-9) for i in range(num_classes)]
    else:
        raise ValueError(f"unknown profile {profile!r}; expected exp, step or pareto")
    return [max(c, min_count) for c in counts]


def longtail_indices(labels, counts, seed: int = 0) -> np.ndarray:
    """Indices of the samples a long-tailed subset keeps, exactly as LDAM-DRW selects them.

    LDAM-DRW's ``IMBALANCECIFAR10/100`` seeds NumPy's global RNG once and then, class by
    class in class order, shuffles that class's indices and keeps the first ``counts[c]``.
    A private ``RandomState(seed)`` gives the same stream without touching global state.
    """
    labels = np.asarray(labels)
    rng = np.random.RandomState(seed)
    keep = []
    for cls, n in enumerate(counts):
        idx = np.where(labels == cls)[0]
        if n > len(idx):
            raise ValueError(f"class {cls}: asked for {n} samples, only {len(idx)} available")
        rng.shuffle(idx)
        keep.append(idx[:n])
    return np.concatenate(keep).astype(np.int64)


def class_counts(labels, num_classes: int) -> np.ndarray:
    return np.bincount(np.asarray(labels), minlength=num_classes)


def select_classes(labels, class_ids) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the samples whose label is in ``class_ids`` and their labels renumbered
    0..len(class_ids)-1 in the given order (e.g. the first 50 CIFAR-100 classes)."""
    labels = np.asarray(labels)
    remap = np.full(labels.max() + 1, -1, dtype=np.int64)
    remap[np.asarray(class_ids)] = np.arange(len(class_ids))
    idx = np.where(remap[labels] >= 0)[0]
    return idx, remap[labels[idx]]


def thesis_split(labels, num_classes: int = 100, train_per_class: int = 450,
                 test_per_class: int = 50, imb_factor: float = 0.01, seed: int = 42,
                 lt_train_min: int = 0) -> dict:
    """The thesis's split of the CIFAR-100 *train* set (seed 001, section 3.2.3, A.1).

    Per class (class order, one ``default_rng(seed)`` stream): a random permutation of the
    class's images, the first ``train_per_class`` for training, the next ``test_per_class``
    for testing. Long-tailed train and test sets then keep, per class, the first
    ``longtail_counts(...)`` images of those lists, with the same class order (class 0 most
    frequent); the test profile is floored at one image per class (the training profile at
    ``lt_train_min``, 0 as in the thesis; tiny smoke splits need 1). Returns index arrays
    into ``labels``: ``train``, ``test``, ``lt_train``, ``lt_test``, plus the two count lists.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    lt_train_counts = longtail_counts(train_per_class, num_classes, imb_factor, min_count=lt_train_min)
    lt_test_counts = longtail_counts(test_per_class, num_classes, imb_factor, min_count=1)
    parts = {"train": [], "test": [], "lt_train": [], "lt_test": []}
    for cls in range(num_classes):
        idx = rng.permutation(np.where(labels == cls)[0])
        if len(idx) < train_per_class + test_per_class:
            raise ValueError(f"class {cls} has {len(idx)} images, the split needs "
                             f"{train_per_class + test_per_class}")
        train, test = idx[:train_per_class], idx[train_per_class:train_per_class + test_per_class]
        parts["train"].append(train)
        parts["test"].append(test)
        parts["lt_train"].append(train[:lt_train_counts[cls]])
        parts["lt_test"].append(test[:lt_test_counts[cls]])
    split = {k: np.concatenate(v).astype(np.int64) for k, v in parts.items()}
    split["lt_train_counts"] = lt_train_counts
    split["lt_test_counts"] = lt_test_counts
    return split


GROUP_NAMES = {"shot": ("many", "medium", "few"), "thirds": ("head", "middle", "tail")}


def class_groups(train_counts, scheme: str = "shot", many: int = 100, few: int = 20) -> np.ndarray:
    """Group id per class: 0/1/2.

    ``shot``  : many (> ``many`` training images), medium (``few``..``many``), few (< ``few``),
                the split of Liu et al. 2019 (OLTR) used by LDAM-DRW-era CIFAR-LT papers.
    ``thirds``: head / middle / tail thirds of the classes sorted by training count, most
                frequent first (ties keep class order); boundaries at floor(C/3) and
                floor(2C/3), so 100 classes give 33 / 33 / 34.
    """
    counts = np.asarray(train_counts)
    if scheme == "shot":
        return np.where(counts > many, 0, np.where(counts >= few, 1, 2))
    if scheme == "thirds":
        order = np.argsort(-counts, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(counts))
        c = len(counts)
        return np.where(rank < c // 3, 0, np.where(rank < 2 * c // 3, 1, 2))
    raise ValueError(f"unknown group scheme {scheme!r}; expected one of {sorted(GROUP_NAMES)}")


def heldout_indices(labels, exclude, per_class: int, seed: int = 0) -> np.ndarray:
    """A class-balanced set of ``per_class`` samples per class drawn from the samples not in
    ``exclude`` (e.g. the training images a long-tailed subset leaves out: a validation set that
    shares no image with the training set)."""
    labels = np.asarray(labels)
    free = np.ones(len(labels), dtype=bool)
    free[np.asarray(exclude, dtype=np.int64)] = False
    rng = np.random.default_rng(seed)
    keep = []
    for cls in range(int(labels.max()) + 1):
        idx = np.where(free & (labels == cls))[0]
        if len(idx) < per_class:
            raise ValueError(f"class {cls}: {len(idx)} unused samples, {per_class} asked for")
        keep.append(np.sort(rng.choice(idx, per_class, replace=False)))
    return np.concatenate(keep)


def fold_split(labels, folds: int, fold: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held-out) indices of fold ``fold`` of a stratified ``folds``-fold split (scikit-learn's
    ``StratifiedKFold``, shuffled with ``seed``): a run trained on the kept samples predicts the
    held-out ones, and the ``folds`` runs together give out-of-fold predictions of every sample.
    A class with a single sample is kept in every fold, so that no run trains without a class."""
    if not 0 <= fold < folds:
        raise ValueError(f"fold {fold} of {folds}: expected 0 <= fold < folds")
    labels = np.asarray(labels)
    splittable = np.where(np.bincount(labels)[labels] >= 2)[0]
    with warnings.catch_warnings():    # a tail class smaller than ``folds`` is simply absent from some folds
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)
        splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(splittable, labels[splittable]))
    held = splittable[splits[fold][1]]
    return np.setdiff1d(np.arange(len(labels)), held), held
