"""torchvision and timm models behind one interface: ``forward_features`` + ``classifier``.

The library model keeps its whole body (for ConvNeXt its final LayerNorm too) as
``backbone``; only the last linear layer becomes our ``classifier``, so freezing the
backbone and retraining the classifier is ``model.classifier`` alone.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from .head import fp32_head


class BackboneClassifier(nn.Module):
    def __init__(self, backbone: nn.Module, classifier: nn.Module, num_features: int):
        super().__init__()
        self.backbone, self.classifier, self.num_features = backbone, classifier, num_features

    def forward_features(self, x):
        return self.backbone(x)

    def forward(self, x):
        return fp32_head(self.classifier, self.forward_features(x))


@dataclass(frozen=True)
class TorchvisionSpec:
    builder: str        # torchvision.models function
    weights: str        # weights enum member used for pretrained=True
    head_path: tuple    # attribute path of the last linear layer


TORCHVISION = {
    "resnet50": TorchvisionSpec("resnet50", "ResNet50_Weights.IMAGENET1K_V2", ("fc",)),
    "mobilenet_v2": TorchvisionSpec("mobilenet_v2", "MobileNet_V2_Weights.IMAGENET1K_V1", ("classifier", "1")),
    "convnext_base": TorchvisionSpec("convnext_base", "ConvNeXt_Base_Weights.DEFAULT", ("classifier", "2")),
    "vit_b_16": TorchvisionSpec("vit_b_16", "ViT_B_16_Weights.IMAGENET1K_V1", ("heads", "head")),
}
# name -> pretrained tag, pinned: timm's default tag for a name changes between releases
TIMM = {"efficientnet_b0": "ra_in1k", "efficientnet_b1": "ra4_e3600_r240_in1k", "efficientnet_b2": "ra_in1k",
        "vit_base_patch16_224": "augreg2_in21k_ft_in1k",    # ImageNet-21k, fine-tuned on 1k (thesis 3.4.1)
        "resnet34d": "ra2_in1k", "resnet50d": "ra2_in1k", "densenet121": "ra_in1k"}   # seed 002's Fig 1 sweep


class PretrainedWeightsUnavailable(RuntimeError):
    pass


def _weights_enum(spec: TorchvisionSpec):
    import torchvision

    enum_name, member = spec.weights.split(".")
    return getattr(getattr(torchvision.models, enum_name), member)


def pretrained_source(name: str) -> dict:
    """Where ``pretrained=True`` takes ``name``'s weights from, and where they are cached."""
    if name in TORCHVISION:
        weights = _weights_enum(TORCHVISION[name])
        cache = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
        return {"library": "torchvision", "weights": TORCHVISION[name].weights,
                "url": weights.url, "cache_file": str(cache)}
    if name in TIMM:
        import timm
        from huggingface_hub import constants

        hf_id = timm.models.get_pretrained_cfg(f"{name}.{TIMM[name]}").hf_hub_id
        return {"library": "timm", "weights": f"{name}.{TIMM[name]}", "url": f"hf-hub:{hf_id}",
                "cache_file": os.path.join(constants.HF_HUB_CACHE, f"models--{hf_id.replace('/', '--')}")}
    raise KeyError(name)


def _unavailable(name: str, err: Exception) -> PretrainedWeightsUnavailable:
    src = pretrained_source(name)
    return PretrainedWeightsUnavailable(
        f"could not get pretrained weights for {name} ({src['weights']}): {err}\n"
        f"  source: {src['url']}\n  expected in cache: {src['cache_file']}\n"
        f"  Fix: run on a machine with network once (the file lands in that cache), copy the cache "
        f"here, or pass weights=PATH to a local weights file.")


def _load_file(path) -> dict:
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "model_state"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    return state


def _get(module, path):
    for p in path:
        module = module[int(p)] if p.isdigit() else getattr(module, p)
    return module


def _set(module, path, value):
    parent = _get(module, path[:-1])
    if path[-1].isdigit():
        parent[int(path[-1])] = value
    else:
        setattr(parent, path[-1], value)


def build_torchvision(name: str, num_classes: int, pretrained: bool = False, weights=None) -> BackboneClassifier:
    import torchvision

    spec = TORCHVISION[name]
    try:
        net = getattr(torchvision.models, spec.builder)(weights=_weights_enum(spec) if pretrained else None)
    except Exception as err:  # no network, bad cache: say what is needed and where
        if pretrained:
            raise _unavailable(name, err) from err
        raise
    if weights is not None:
        net.load_state_dict(_load_file(weights))
    head = _get(net, spec.head_path)
    _set(net, spec.head_path, nn.Identity())
    classifier = nn.Linear(head.in_features, num_classes)
    if spec.builder == "mobilenet_v2":  # keep its dropout in front of the new layer
        classifier = nn.Sequential(nn.Dropout(0.2), classifier)
    return BackboneClassifier(net, classifier, head.in_features)


def build_timm(name: str, num_classes: int, pretrained: bool = False, weights=None, **kwargs) -> BackboneClassifier:
    """``kwargs`` go to ``timm.create_model`` (e.g. ``dynamic_img_size=True`` for ViT inputs
    other than 224 px)."""
    import timm

    try:
        net = timm.create_model(f"{name}.{TIMM[name]}", pretrained=pretrained, **kwargs)
    except Exception as err:
        if pretrained:
            raise _unavailable(name, err) from err
        raise
    if weights is not None:
        net.load_state_dict(_load_file(weights))
    net.reset_classifier(0)
    return BackboneClassifier(net, nn.Linear(net.num_features, num_classes), net.num_features)
