"""Classifier layers run in float32, also under bf16 autocast."""
from __future__ import annotations

import torch
import torch.nn as nn


def fp32_head(head: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """``head(features)`` in float32. bf16 keeps about three significant digits, and losses
    such as LDAM (s = 30) or logit adjustment scale or shift the logits, so rounding them to
    bf16 would add visible noise; the head is one small layer, so this costs nothing."""
    if not torch.amp.is_autocast_available(features.device.type):     # meta tensors (tests)
        return head(features.float())
    with torch.autocast(features.device.type, enabled=False):
        return head(features.float())


def scale_logits(model: nn.Module, scale: float) -> nn.Module:
    """``model`` with its classifier's outputs multiplied by ``scale``: the logits a loss with a
    ``logit_scale`` (LDAM's s) trains on, so every probability computed from the model (test
    predictions, ECE, ensembles, a frozen backbone's features through the classifier) comes from
    them. A forward hook, so the state dict keeps its keys."""
    if scale != 1:
        model.classifier.register_forward_hook(lambda module, args, out: out * scale)
    return model


class LearnableWeightScaling(nn.Module):
    """LWS (Kang et al. 2020, decoupling): ``scale_j * classifier(x)_j`` with the classifier
    fixed and only the per-class ``scale`` (initialised to 1) trained."""

    def __init__(self, classifier: nn.Module, num_classes: int):
        super().__init__()
        self.classifier = classifier.requires_grad_(False)
        self.scale = nn.Parameter(torch.ones(num_classes))

    def trainable_parameters(self):
        return [self.scale]

    def forward(self, x):
        return self.scale * self.classifier(x)
