"""Multi-domain expert ResNet-32 (seed 003, section 4.2.2).

The early feature extractor (stem + first stage, 16 channels) is shared; each of the three
experts owns a second and third stage and a linear classifier. This is RIDE's / SADE's CIFAR
ResNet-32 with three experts (Wang et al. 2021, ``ride_resnet_cifar.py`` with
``reduce_dimension=True``: expert stages of 24 and 48 channels), the closest published design;
the seed states neither the split point nor the widths.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from common.models import fp32_head, register_model
from common.models.resnet_cifar import init_weights, make_stage


class MultiExpertResNet32(nn.Module):
    compiled_functions = ("expert_outputs",)    # what every step and forward goes through (common.precision)

    def __init__(self, num_classes: int, num_experts: int = 3, expert_widths=(24, 48), blocks: int = 5):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = make_stage(16, 16, blocks, 1)
        w2, w3 = expert_widths
        self.experts = nn.ModuleList(
            nn.Sequential(make_stage(16, w2, blocks, 2), make_stage(w2, w3, blocks, 2)) for _ in range(num_experts))
        self.classifiers = nn.ModuleList(nn.Linear(w3, num_classes) for _ in range(num_experts))
        self.num_experts, self.num_features = num_experts, w3
        self.apply(init_weights)

    def shared(self, x):
        return self.layer1(F.relu(self.bn1(self.conv1(x))))

    def expert_outputs(self, x):
        """Per-expert ``(logits E x N x C, features E x N x D)``.

        ``x`` is one batch (every expert sees it) or a list of ``E`` views of the same batch,
        view k for expert k; the views go through the shared layers as one batch.
        """
        if isinstance(x, (list, tuple)):
            n = x[0].shape[0]
            trunk = self.shared(torch.cat(list(x))).split(n)
        else:
            trunk = [self.shared(x)] * self.num_experts
        feats = [F.adaptive_avg_pool2d(e(t), 1).flatten(1) for e, t in zip(self.experts, trunk)]
        logits = [fp32_head(c, f) for c, f in zip(self.classifiers, feats)]
        return torch.stack(logits), torch.stack(feats)

    def forward(self, x):
        """Log of the experts' mean softmax (Eq. 19): ``softmax(forward(x))`` is the ensemble's
        probability, and its argmax the prediction."""
        logits, _ = self.expert_outputs(x)
        return torch.logsumexp(F.log_softmax(logits.float(), dim=-1), dim=0) - math.log(self.num_experts)


@register_model("multi_expert_resnet32")
def _build(num_classes, pretrained=False, weights=None, **kwargs):
    if pretrained or weights is not None:
        raise ValueError("multi_expert_resnet32 is trained from scratch")
    return MultiExpertResNet32(num_classes, **kwargs)
