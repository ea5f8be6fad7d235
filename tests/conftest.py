import os
from pathlib import Path

import pytest

from common.data.synthetic import write_synthetic_cifar

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LTREPRO_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """Small synthetic CIFAR-10 and CIFAR-100 in the official on-disk format."""
    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic_cifar("cifar10", root, train_per_class=120, test_per_class=30, seed=1)
    write_synthetic_cifar("cifar100", root, train_per_class=60, test_per_class=10, seed=1)
    return root


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    """Very small synthetic CIFAR-10 / -100 for end-to-end runs of the heavier models."""
    root = tmp_path_factory.mktemp("tiny")
    write_synthetic_cifar("cifar10", root, train_per_class=16, test_per_class=3, seed=2)
    write_synthetic_cifar("cifar100", root, train_per_class=6, test_per_class=1, seed=2)
    return root


@pytest.fixture(scope="session")
def real_cifar10_root():
    if not (SHARED_DATA / "cifar-10-batches-py" / "data_batch_1").is_file():
        pytest.skip(f"reconstructed CIFAR-10 not found under {SHARED_DATA}")
    return SHARED_DATA
