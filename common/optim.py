"""Optimisers and per-epoch learning-rate schedules, by name (the ``train`` section's
``optimizer`` and ``schedule``)."""
from __future__ import annotations

import math

import torch

from .registry import Registry

OPTIMIZERS = Registry("optimizer", {
    "sgd": lambda params, c: torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, nesterov=c.nesterov,
                                             weight_decay=c.weight_decay),
    "adam": lambda params, c: torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay),   # L2 in the gradient
    "adamw": lambda params, c: torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay),  # decoupled decay
})

# name -> (epoch after warm-up, train config) -> multiplier of the base learning rate
SCHEDULES = Registry("schedule", {
    "multistep": lambda e, c: c.gamma ** sum(e >= m for m in c.milestones),
    "step": lambda e, c: c.gamma ** (e // c.step_size),
    "cosine": lambda e, c: 0.5 * (1 + math.cos(math.pi * (e - c.warmup_epochs) / max(1, c.epochs - c.warmup_epochs))),
    "constant": lambda e, c: 1.0,
})


def build_optimizer(params, cfg) -> torch.optim.Optimizer:
    return OPTIMIZERS[cfg.optimizer](params, cfg)


def lr_factor(epoch: int, cfg) -> float:
    """Multiplier of the base learning rate during ``epoch`` (0-based): linear warm-up over
    ``cfg.warmup_epochs``, then ``cfg.schedule``."""
    if epoch < cfg.warmup_epochs:
        return (epoch + 1) / cfg.warmup_epochs
    return SCHEDULES[cfg.schedule](epoch, cfg)
