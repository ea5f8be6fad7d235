"""Losses: ``build_loss(name, class_counts, **kwargs)``; ``forward(logits, targets)`` returns
the batch-mean loss. A loss class joins ``LOSSES`` with ``@register_loss(name)`` (see
:mod:`common.losses.registry`); importing its module registers it. Defaults follow each
method's paper or official code (see the class docstrings)."""
from __future__ import annotations

import torch.nn as nn

from .base import ClassCountLoss
from .class_balanced import ClassBalancedCE, ClassBalancedFocal, sigmoid_bias_init
from .cross_entropy import BalancedSoftmax, CrossEntropy, LogitAdjusted, WeightedCrossEntropy
from .drw import DeferredReweighting
from .focal import FocalLoss
from .ldam import LDAMLoss
from .registry import LOSSES, register_loss
from .seql import SoftmaxEQL
from .weights import class_weights


def build_loss(name: str, class_counts, drw: bool = False, drw_epoch: int = 160,
               drw_beta: float = 0.9999, **kwargs) -> nn.Module:
    """Build loss ``name`` from the per-class training counts.

    ``drw=True`` wraps it in deferred re-weighting from ``drw_epoch`` (LDAM-DRW: 160, beta
    0.9999); ``kwargs`` go to the loss (``gamma``, ``beta``, ``max_m``, ``s``, ``tau``, ...).
    """
    loss = LOSSES[name](class_counts, **kwargs)
    return DeferredReweighting(loss, drw_epoch, drw_beta) if drw else loss
