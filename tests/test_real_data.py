"""Checks on the reconstructed CIFAR-10 in ../shared/data (skipped when absent)."""
import numpy as np

from common.data import load_cifar, longtail_counts, longtail_indices


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
