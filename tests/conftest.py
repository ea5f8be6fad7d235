import os
from pathlib import Path

import pytest

from common.data.synthetic import write_synthetic_cifar

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LTREPRO_SHARED_DATA", REPO.parent / "shared" / "data"))


def _synthetic(tmp_path_factory, name, cifar10_sizes, cifar100_sizes, seed):
    root = tmp_path_factory.mktemp(name)
    write_synthetic_cifar("cifar10", root, *cifar10_sizes, seed=seed)
    write_synthetic_cifar("cifar100", root, *cifar100_sizes, seed=seed)
    return root


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """Small synthetic CIFAR-10 and CIFAR-100 in the official on-disk format."""
    return _synthetic(tmp_path_factory, "synthetic", (120, 30), (60, 10), seed=1)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    """Very small synthetic CIFAR-10 / -100 for end-to-end runs of the heavier models."""
    return _synthetic(tmp_path_factory, "tiny", (16, 3), (6, 1), seed=2)


@pytest.fixture(scope="session")
def real_cifar10_root():
    if not (SHARED_DATA / "cifar-10-batches-py" / "data_batch_1").is_file():
        pytest.skip(f"reconstructed CIFAR-10 not found under {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def offline_weight_caches(tmp_path, monkeypatch):
    """Empty torch hub and Hugging Face caches in tmp_path, Hugging Face offline.
    Returns ``put(name, state_dict)``, which stores a checkpoint where ``pretrained_source``
    says ``pretrained=True`` looks for it (made-up weights, for tests only)."""
    import torch
    from huggingface_hub import constants
    from safetensors.torch import save_file

    from common.models import pretrained_source

    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "torch_hub"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf_hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    def put(name, state_dict):
        src = pretrained_source(name)
        target = Path(src["cache_file"])
        if src["library"] == "torchvision":
            target.parent.mkdir(parents=True, exist_ok=True)
            torch.save(state_dict, target)
        else:  # the hub's layout: refs/main names the snapshot that holds the file
            commit = "0" * 40
            (target / "refs").mkdir(parents=True, exist_ok=True)
            (target / "refs" / "main").write_text(commit)
            (target / "snapshots" / commit).mkdir(parents=True, exist_ok=True)
            save_file(state_dict, target / "snapshots" / commit / "model.safetensors")
    return put


@pytest.fixture
def fake_cuda():
    """``with fake_cuda():`` new tensors and modules are fake CUDA tensors (no GPU needed): shapes,
    dtypes and devices propagate, a CPU tensor mixed in raises ``FakeTensorDeviceMismatchError``,
    and a data-dependent host sync (``.item()``, ``bool(t)``, ``nonzero()``) raises, so code that
    completes here makes none. Real tensors moved in with ``.to("cuda")`` become fake. Backward
    does not run here (autograd asks for a CUDA context): run it on ``meta`` tensors."""
    import contextlib

    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode

    mode = FakeTensorMode(allow_non_fake_inputs=True)    # one per test: its tensors live across entries

    @contextlib.contextmanager
    def fake():
        with mode, torch.device("cuda"):
            yield
    return fake
