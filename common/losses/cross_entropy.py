"""Softmax cross-entropy and its logit-offset relatives: CE, weighted CE, Balanced Softmax, LA."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import ClassCountLoss
from .registry import register_loss
from .weights import class_weights


@register_loss("ce")
class CrossEntropy(ClassCountLoss):
    """Softmax CE. With a class ``weight``, PyTorch's weighted mean
    ``sum_i w_{y_i} l_i / sum_i w_{y_i}`` (``nn.CrossEntropyLoss(weight=w)``), as used by seed
    000's modified CE and by LDAM-DRW's re-weighting."""

    def offset(self):
        return None

    def forward(self, logits, targets):
        offset = self.offset()
        return F.cross_entropy(logits if offset is None else logits + offset, targets, weight=self.weight)


@register_loss("wce")
class WeightedCrossEntropy(CrossEntropy):
    """CE with class weights normalised to sum to C: by default inverse frequency 1 / n_c (seed
    000's "modified CE"; the thesis's weighted softmax, Table 3.4); ``scheme`` ``isns`` or ``ens``
    gives seed 002's other weightings (:func:`~common.losses.weights.class_weights`)."""

    def __init__(self, class_counts, scheme: str = "ins", beta: float = 0.9999, weight=None):
        super().__init__(class_counts, class_weights(class_counts, scheme, beta) if weight is None else weight)


@register_loss("bs")
class BalancedSoftmax(CrossEntropy):
    """Balanced Softmax (Ren et al. 2020): CE on ``logits + log n_j``
    (official ``balanced_softmax_loss`` adds ``log(sample_per_class)``)."""

    def offset(self):
        return self.counts.log()


@register_loss("la")
class LogitAdjusted(CrossEntropy):
    """Logit-adjusted CE (Menon et al. 2021): CE on ``logits + tau * log(pi_train / pi_test)``.

    ``tau`` defaults to 1.0, the paper's choice; ``test_counts=None`` means a uniform test
    prior, for which the offset is ``tau * log(pi_train)`` up to a constant."""

    def __init__(self, class_counts, tau: float = 1.0, test_counts=None, weight=None):
        super().__init__(class_counts, weight)
        self.tau = tau
        self.register_buffer("test_log_prior", None if test_counts is None else
                             F.normalize(torch.as_tensor(test_counts, dtype=torch.float32), p=1, dim=0).log())

    def offset(self):
        adjust = self.log_prior if self.test_log_prior is None else self.log_prior - self.test_log_prior
        return self.tau * adjust

