"""CUDA code paths exercised without a GPU (fake CUDA tensors, see ``fake_cuda`` in conftest.py):
each test names the defect a GPU would hit that it guards against."""
from types import SimpleNamespace

import pytest
import torch

from common.data import BatchLoader
from common.experiment import default_step
from common.losses import build_loss
from common.models import build_model
from common.precision import Numerics

COUNTS = [50, 20, 10, 5, 2]


def test_classifier_only_stage_on_cached_cuda_features(fake_cuda):
    """Seed 000's stage-2 rows: the loader over cached features gets labels already on the GPU."""
    with fake_cuda():
        model = build_model("resnet32", len(COUNTS))
        images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
        ctx = SimpleNamespace(
            cfg=SimpleNamespace(train=SimpleNamespace(classifier_only=True, augment="none", mixup_alpha=0.0)),
            loss_fn=build_loss("ce", COUNTS), numerics=Numerics(bf16=True, channels_last=True),
            loader=BatchLoader(images, torch.arange(8) % len(COUNTS), 4, shuffle=True),
            frozen_features=lambda x, bf16: model.forward_features(x.float()))
        step, _ = default_step(ctx)
        for features, labels, indices in ctx.loader:
            loss = step(model, features, labels, indices, 0)
        assert loss.device.type == "cuda" and ctx.loader.labels.device.type == "cuda"


@pytest.mark.parametrize("name", ["cb", "wce", "ldam"])
def test_drw_keeps_class_weights_on_the_loss_device_across_its_switch(fake_cuda, name):
    loss = build_loss(name, COUNTS, drw=True, drw_epoch=1)     # built on the CPU, then moved, as a run does
    with fake_cuda():
        loss.to("cuda")
        logits, labels = torch.randn(4, len(COUNTS)), torch.randint(0, len(COUNTS), (4,))
        for epoch in (0, 1, 0):
            loss.set_epoch(epoch)
            assert loss(logits, labels).device.type == "cuda"
