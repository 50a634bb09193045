"""torchvision ResNets as encoder trunks, with the 3x3 CIFAR stem for small inputs.

The CIFAR stem (3x3 stride-1 convolution, no max-pool) is the usual patch for 32-pixel images
(SimCLR's CIFAR variant, solo-learn); the ImageNet stem would shrink them to 1x1 too early.
"""

from __future__ import annotations

import importlib

from torch import nn


def build_resnet(name: str, in_channels: int, cifar_stem: bool) -> nn.Module:
    """A randomly initialised torchvision ResNet (``name``: resnet18, resnet34, resnet50) without
    its classifier; sets ``out_dim``. torchvision is imported here, when a ResNet is built: its
    import (1.7 s, most of it torch._dynamo) would otherwise start every command."""
    net = getattr(importlib.import_module("torchvision.models"), name)(weights=None)
    out_dim = net.fc.in_features
    if cifar_stem:
        net.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
    elif in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    net.fc = nn.Identity()
    net.out_dim = out_dim
    return net
