"""Checks on the reconstructed CIFAR-10 in ../shared/data (skipped when absent)."""
import numpy as np

from common.config import validate_config
from common.data import load_cifar, longtail_counts, longtail_indices
from common.datasets import build_datasets, planned_training_indices


def test_real_cifar10_counts_balance_and_means(real_cifar10_root):
    x, y, classes = load_cifar("cifar10", real_cifar10_root, train=True)
    assert x.shape == (50000, 32, 32, 3) and classes[0] == "airplane" and classes[-1] == "truck"
    assert np.bincount(y).tolist() == [5000] * 10
    mean = x.reshape(-1, 3).mean(0) / 255
    std = x.reshape(-1, 3).std(0) / 255
    np.testing.assert_allclose(mean, [0.4913, 0.4821, 0.4465], atol=2e-3)
    np.testing.assert_allclose(std, [0.2454, 0.2429, 0.2607], atol=3e-3)
    xt, yt, _ = load_cifar("cifar10", real_cifar10_root, train=False)
    assert xt.shape == (10000, 32, 32, 3) and np.bincount(yt).tolist() == [1000] * 10


def test_real_cifar10_lt_subset(real_cifar10_root):
    _, y, _ = load_cifar("cifar10", real_cifar10_root, train=True)
    counts = longtail_counts(5000, 10, 0.01)
    idx = longtail_indices(y, counts)
    assert np.bincount(y[idx]).tolist() == counts and len(set(idx.tolist())) == sum(counts) == 12406


def test_planned_training_sets_match_the_real_ones(real_cifar10_root):
    """A plan counts training sets from the split's definition; on the real files the sizes agree
    (the ensemble study's proxy: first 1000 per class, imbalance 0.02, a bag, a fold)."""
    for extra in ({}, {"bag_threshold": 240, "bag_index": 1}, {"balance_threshold": 100}, {"folds": 3, "fold": 2}):
        data = {"dataset": "cifar10", "imb_factor": 0.02, "max_per_class": 1000, **extra}
        dcfg = validate_config({"data": data, "model": {"name": "resnet32"}}).data
        real, planned = build_datasets(dcfg, real_cifar10_root), planned_training_indices(dcfg)
        stand_in_labels = np.repeat(np.arange(10), 5000)
        assert real["train_counts"] == np.bincount(stand_in_labels[planned["train"]], minlength=10).tolist()
        assert real["group_counts"] == planned["group_counts"]
        held = real["tests"].get("heldout_fold")
        assert (held is None) == (planned["heldout_fold"] is None)
        assert held is None or len(held[1]) == len(planned["heldout_fold"])
