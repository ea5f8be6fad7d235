"""Classifier layers run in float32, also under bf16 autocast."""
from __future__ import annotations

import torch
import torch.nn as nn


def fp32_head(head: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """``head(features)`` in float32. bf16 keeps about three significant digits, and losses
    such as LDAM (s = 30) or logit adjustment scale or shift the logits, so rounding them to
    bf16 would add visible noise; the head is one small layer, so this costs nothing."""
    with torch.autocast(features.device.type, enabled=False):
        return head(features.float())
