"""Class-balanced losses (Cui et al. 2019): effective-number class weights on softmax CE
or on focal loss."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import ClassCountLoss
from .registry import register_loss
from .focal import softmax_focal
from .weights import class_weights


@register_loss("cb")
class ClassBalancedCE(ClassCountLoss):
    """Softmax CE weighted by ``(1 - beta) / (1 - beta ** n_y)`` normalised to sum to C.

    beta 0.9999 as in Cui et al.'s CIFAR runs. Reduction as their official code
    (``tf.losses.softmax_cross_entropy(weights=...)``): ``sum_i w_{y_i} l_i / N``.
    ``beta = 0`` gives all weights 1, i.e. plain CE.
    """

    def __init__(self, class_counts, beta: float = 0.9999, weight=None):
        super().__init__(class_counts, class_weights(class_counts, "ens", beta) if weight is None else weight)
        self.beta = beta

    def forward(self, logits, targets):
        return self.mean_over_batch(F.cross_entropy(logits, targets, reduction="none"), targets)


@register_loss("cb_focal")
class ClassBalancedFocal(ClassCountLoss):
    """Class-balanced focal loss, beta 0.9999, gamma 1.0 (Cui et al.'s CIFAR script).

    ``variant="sigmoid"`` (default) is the paper's: one sigmoid focal term per class,
    ``sum_c w_{y} (1 - p_t) ** gamma * BCE(z_c, [c == y])``, summed over classes and divided
    by the batch size (official ``focal_loss`` divides by the number of positive labels).
    Cui et al. also initialise the classifier bias to ``-log((1 - pi) / pi)``, pi = 0.1, for
    sigmoid losses; a config asks for it with ``model.classifier_prior: 0.1``.
    ``variant="softmax"`` is ``w_y (1 - p_y) ** gamma * CE``, with ``p_y`` the softmax
    probability (not the sigmoid one a widely copied port mixes in).
    """

    def __init__(self, class_counts, beta: float = 0.9999, gamma: float = 1.0,
                 variant: str = "sigmoid", weight=None):
        super().__init__(class_counts, class_weights(class_counts, "ens", beta) if weight is None else weight)
        if variant not in ("sigmoid", "softmax"):
            raise ValueError(f"variant must be 'sigmoid' or 'softmax', got {variant!r}")
        self.beta, self.gamma, self.variant = beta, gamma, variant

    def forward(self, logits, targets):
        logits = logits.float()
        if self.variant == "softmax":
            return self.mean_over_batch(softmax_focal(logits, targets, self.gamma), targets)
        onehot = F.one_hot(targets, logits.shape[1]).float()
        bce = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none")
        signed = torch.where(onehot > 0, logits, -logits)          # z_t: p_t = sigmoid(z_t)
        modulator = torch.exp(self.gamma * F.logsigmoid(-signed))  # (1 - p_t) ** gamma, stably
        return self.mean_over_batch((modulator * bce).sum(1), targets)


def sigmoid_bias_init(pi: float = 0.1) -> float:
    """Cui et al.'s classifier bias initialisation for sigmoid-based losses."""
    return -float(torch.log(torch.tensor((1 - pi) / pi)))
