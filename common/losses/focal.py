"""Focal loss on softmax (Lin et al. 2017)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import ClassCountLoss
from .registry import register_loss


def softmax_focal(logits, targets, gamma: float):
    """Per-sample ``(1 - p_y) ** gamma * (-log p_y)`` with ``p_y`` the softmax probability."""
    log_p = F.log_softmax(logits.float(), dim=1).gather(1, targets[:, None]).squeeze(1)
    return -torch.pow(1 - log_p.exp(), gamma) * log_p


@register_loss("focal")
class FocalLoss(ClassCountLoss):
    """``w_y (1 - p_y) ** gamma * (-log p_y)``, averaged over the batch.

    Default ``gamma = 1.0``: LDAM-DRW's official ``train.py`` (``FocalLoss(gamma=1)``) and
    Cui et al.'s CIFAR setting; Lin et al.'s detection default is 2. LDAM-DRW computes
    ``p_y`` from the *weighted* CE, which is wrong once a weight is set; here ``p_y`` is the
    model's probability, and the class weight multiplies the result.
    """

    def __init__(self, class_counts, gamma: float = 1.0, weight=None):
        super().__init__(class_counts, weight)
        self.gamma = gamma

    def forward(self, logits, targets):
        return self.mean_over_batch(softmax_focal(logits, targets, self.gamma), targets)
