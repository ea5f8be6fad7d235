"""What every loss here shares: class counts as a buffer and an optional class weight."""
from __future__ import annotations

import torch
import torch.nn as nn


class ClassCountLoss(nn.Module):
    """Base for losses built from per-class training counts.

    ``weight`` (per-class, or None) can be replaced while training, which is how deferred
    re-weighting switches it on (:class:`~common.losses.drw.DeferredReweighting`).
    """

    #: what the model's logits are multiplied by before this loss sees them (LDAM: its s). The
    #: model applies it (:func:`common.models.scale_logits`), so its test probabilities are the
    #: softmax of the very logits the loss trains on.
    logit_scale: float = 1.0

    def __init__(self, class_counts, weight=None):
        super().__init__()
        self.register_buffer("counts", torch.as_tensor(class_counts, dtype=torch.float32))
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32))

    @property
    def log_prior(self) -> torch.Tensor:
        return torch.log(self.counts / self.counts.sum())

    def sample_weights(self, targets):
        """Per-sample weight w_{y_i}, or None when the loss is unweighted."""
        return None if self.weight is None else self.weight[targets]

    def mean_over_batch(self, per_sample, targets):
        """Plain mean over the batch of (optionally class-weighted) per-sample losses."""
        w = self.sample_weights(targets)
        return (per_sample if w is None else per_sample * w).mean()
