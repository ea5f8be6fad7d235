"""Softmax equalization loss (Tan et al. 2020, EQL, softmax form for classification)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import ClassCountLoss
from .registry import register_loss


@register_loss("seql")
class SoftmaxEQL(ClassCountLoss):
    """``-log(exp(z_y) / sum_j w_j exp(z_j))`` with ``w_j = 1 - beta_j * T(f_j) * (1 - y_j)``.

    ``T(f_j) = 1`` for tail classes, whose frequency ``f_j = n_j / N`` is below ``lambda_``;
    ``beta_j ~ Bernoulli(gamma)`` per sample and class keeps some negative gradient for the
    tail. Defaults gamma 0.9, lambda 0.005 as in the softmax EQL of the long-tailed
    classification toolbox (BagofTricks-LT, ``SEQL``) the deep long-tailed survey uses.
    Computed as a logsumexp over the kept logits (dropped ones get -inf), which is stable.
    """

    def __init__(self, class_counts, gamma: float = 0.9, lambda_: float = 0.005, weight=None):
        super().__init__(class_counts, weight)
        self.gamma, self.lambda_ = gamma, lambda_
        self.register_buffer("tail", self.counts / self.counts.sum() < lambda_)

    def forward(self, logits, targets):
        logits = logits.float()
        onehot = F.one_hot(targets, logits.shape[1]).bool()
        beta = torch.rand(logits.shape, device=logits.device) < self.gamma
        drop = beta & self.tail[None, :] & ~onehot
        denom = torch.logsumexp(logits.masked_fill(drop, float("-inf")), dim=1)
        per_sample = denom - logits.gather(1, targets[:, None]).squeeze(1)
        return self.mean_over_batch(per_sample, targets)
