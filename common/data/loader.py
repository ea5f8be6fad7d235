"""A batch iterator over image tensors that already sit on the training device.

CIFAR fits in memory many times over, so there is no Dataset / worker machinery: the uint8
images live on the device (GPU when present), each epoch draws an index order, and batches
are slices. Augmentation is applied by the caller to the whole batch.
"""
from __future__ import annotations

import numpy as np
import torch


def to_tensor_images(images: np.ndarray, device="cpu") -> torch.Tensor:
    """uint8 ``N x 32 x 32 x 3`` array -> uint8 ``N x 3 x 32 x 32`` tensor on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).to(device)


class BatchLoader:
    """Yields ``(images, labels, indices)`` batches.

    ``sample_weights`` turns on sampling with replacement proportional to the weights
    (``WeightedRandomSampler`` semantics, ``num_samples = len(dataset)``). The order of epoch
    ``e`` depends only on ``(seed, e)``, so a resumed run sees the same batches. A last batch
    of a single image is left out (as with ``drop_last``).
    """

    def __init__(self, images: torch.Tensor, labels, batch_size: int, shuffle: bool = False,
                 drop_last: bool = False, sample_weights=None, seed: int = 0):
        self.images = images
        self.labels = torch.as_tensor(labels, dtype=torch.long, device=images.device)  # a device tensor stays there
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        self.batch_size, self.shuffle, self.drop_last, self.seed = batch_size, shuffle, drop_last, seed
        self.sample_weights = (None if sample_weights is None
                               else torch.as_tensor(np.asarray(sample_weights), dtype=torch.double))
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.labels)
        if self.drop_last or (n % self.batch_size == 1 and n > 1):   # a lone last image breaks BatchNorm in training
            return n // self.batch_size
        return -(-n // self.batch_size)

    def order(self) -> torch.Tensor:
        n = len(self.labels)
        gen = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        if self.sample_weights is not None:
            return torch.multinomial(self.sample_weights, n, replacement=True, generator=gen)
        if self.shuffle:
            return torch.randperm(n, generator=gen)
        return torch.arange(n)

    def __iter__(self):
        order = self.order().to(self.images.device)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield self.images[idx], self.labels[idx], idx
