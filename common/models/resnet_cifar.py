"""CIFAR ResNet-32 as in LDAM-DRW (Cao et al. 2019, ``models/resnet_cifar.py``).

Three stages of five basic blocks (16, 32, 64 channels), option-A (zero-padding) shortcuts,
Kaiming-normal init of convolutions and linear layers, global average pooling, and a linear
classifier, or the cosine ``NormedLinear`` classifier LDAM-DRW uses with LDAM.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .head import fp32_head


def init_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        nn.init.kaiming_normal_(module.weight)


class NormedLinear(nn.Module):
    """Cosine classifier: normalised features times normalised class weights."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        self.weight.data.uniform_(-1, 1).renorm_(2, 1, 1e-5).mul_(1e5)

    def forward(self, x):
        return F.normalize(x, dim=1) @ F.normalize(self.weight, dim=0)


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        # option A: subsample and zero-pad the new channels (planes // 4 each side when doubling)
        self.pad = (planes - in_planes) // 2 if (stride != 1 or in_planes != planes) else None

    def shortcut(self, x):
        if self.pad is None:
            return x
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def make_stage(in_planes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    layers = []
    for s in [stride] + [1] * (blocks - 1):
        layers.append(BasicBlock(in_planes, planes, s))
        in_planes = planes
    return nn.Sequential(*layers)


class CifarResNet(nn.Module):
    def __init__(self, num_classes: int = 10, blocks_per_stage: int = 5, widths=(16, 32, 64),
                 normed_classifier: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.layer1 = make_stage(widths[0], widths[0], blocks_per_stage, 1)
        self.layer2 = make_stage(widths[0], widths[1], blocks_per_stage, 2)
        self.layer3 = make_stage(widths[1], widths[2], blocks_per_stage, 2)
        self.num_features = widths[2]
        self.classifier = (NormedLinear if normed_classifier else nn.Linear)(widths[2], num_classes)
        self.apply(init_weights)

    def forward_features(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return F.adaptive_avg_pool2d(out, 1).flatten(1)

    def forward(self, x):
        return fp32_head(self.classifier, self.forward_features(x))


def resnet32(num_classes: int = 10, normed_classifier: bool = False) -> CifarResNet:
    return CifarResNet(num_classes, 5, normed_classifier=normed_classifier)
