"""Deferred re-weighting (Cao et al. 2019): class weights switched on at a given epoch."""
from __future__ import annotations

import torch.nn as nn

from .weights import class_weights


class DeferredReweighting(nn.Module):
    """Wraps a class-count loss; from ``start_epoch`` on its ``weight`` becomes the
    class-balanced weights ``class_weights(counts, 'ens', beta)`` (sum C).

    LDAM-DRW: start 160 of 200, beta 0.9999. The engine calls ``set_epoch`` every epoch.
    """

    def __init__(self, loss: nn.Module, start_epoch: int = 160, beta: float = 0.9999, scheme: str = "ens"):
        super().__init__()
        self.loss, self.start_epoch, self.beta, self.scheme = loss, start_epoch, beta, scheme
        # buffers, so that .to(device) moves both and switching never brings a CPU tensor back
        self.register_buffer("base_weight", loss.weight, persistent=False)   # the loss's own, before start_epoch
        self.register_buffer("drw_weight", class_weights(loss.counts.cpu(), scheme, beta), persistent=False)
        self.active = False

    def set_epoch(self, epoch: int) -> None:
        self.active = epoch >= self.start_epoch
        self.loss.weight = self.drw_weight if self.active else self.base_weight

    @property
    def logit_scale(self) -> float:
        return self.loss.logit_scale

    def forward(self, logits, targets):
        return self.loss(logits, targets)
