"""LDAM loss (Cao et al. 2019)."""
from __future__ import annotations

import torch.nn.functional as F

from .base import ClassCountLoss
from .registry import register_loss


@register_loss("ldam")
class LDAMLoss(ClassCountLoss):
    """CE on ``s * z - s * Delta_y e_y`` with margins ``Delta_j ∝ n_j ** -1/4`` scaled so the
    largest is ``max_m``. Defaults max_m 0.5, s 30 as LDAM-DRW's official ``LDAMLoss``; with a
    class weight (DRW) PyTorch's weighted mean, as there. LDAM-DRW pairs it with a
    ``NormedLinear`` classifier (``build_model('resnet32', normed_classifier=True)``).

    The scale ``s`` is the model's (``logit_scale``): a run's model outputs ``s * z``, the
    logits this loss sees, so stored probabilities and ECE are those of ``s * z`` and not of the
    raw cosine ``z`` (whose softmax over 10 classes barely leaves 1 / C). ``forward`` therefore
    takes logits that are already scaled and subtracts the scaled margin.
    """

    def __init__(self, class_counts, max_m: float = 0.5, s: float = 30.0, weight=None):
        super().__init__(class_counts, weight)
        margins = self.counts.pow(-0.25)
        self.register_buffer("margins", margins * (max_m / margins.max()))
        self.max_m, self.s = max_m, s
        self.logit_scale = s

    def forward(self, scaled_logits, targets):
        margin = F.one_hot(targets, scaled_logits.shape[1]) * (self.s * self.margins[targets])[:, None]
        return F.cross_entropy(scaled_logits.float() - margin, targets, weight=self.weight)
