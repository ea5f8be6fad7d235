"""Re-sampling: class-balanced sampling weights, artificial balancing, balanced bagging."""
from __future__ import annotations

import numpy as np


def class_balanced_sample_weights(labels) -> np.ndarray:
    """Per-sample weight 1 / n_{y_i} for ``torch.utils.data.WeightedRandomSampler``.

    Seed 000 ("Reweight"): count the labels, weight each class inversely to its frequency
    and give every sample its class's weight, so each class is drawn equally often.
    """
    labels = np.asarray(labels)
    counts = np.bincount(labels)
    return 1.0 / counts[labels].astype(np.float64)


def artificial_balance(labels, threshold: int, seed: int = 0) -> np.ndarray:
    """Indices of an artificially balanced set with ``threshold`` images per class (seed 002).

    Each class is re-sampled at rate ``threshold / count``: a class above the threshold is
    down-sampled without replacement, one below it is copied ``threshold // count`` times
    plus a random remainder drawn without replacement, so every class ends at ``threshold``.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    keep = []
    for cls in np.unique(labels):
        idx = np.where(labels == cls)[0]
        copies, remainder = divmod(threshold, len(idx))
        keep.append(np.tile(idx, copies))
        keep.append(rng.choice(idx, size=remainder, replace=False))
    return np.concatenate(keep).astype(np.int64)


def balanced_bagging(labels, threshold: int, seed: int = 0) -> list[np.ndarray]:
    """Index sets of the learners of seed 002's balanced bagging.

    The number of learners is ``max count // threshold``. Classes whose count is above the
    median count are majority classes: their shuffled samples are dealt out across the
    learners; every other (minority) class is copied whole into every learner.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    num_learners = max(1, int(counts.max()) // threshold)
    median = np.median(counts)
    bags = [[] for _ in range(num_learners)]
    for cls, count in zip(classes, counts):
        idx = np.where(labels == cls)[0]
        if count > median:
            for bag, share in zip(bags, np.array_split(rng.permutation(idx), num_learners)):
                bag.append(share)
        else:
            for bag in bags:
                bag.append(idx)
    return [np.concatenate(bag).astype(np.int64) for bag in bags]
