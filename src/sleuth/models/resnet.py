"""torchvision ResNets as encoder trunks, with the 3x3 CIFAR stem for small inputs.

The CIFAR stem (3x3 stride-1 convolution, no max-pool) is the usual patch for 32-pixel images
(SimCLR's CIFAR variant, solo-learn); the ImageNet stem would shrink them to 1x1 too early.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn
from torchvision import models as tvm

RESNETS: dict[str, Callable[..., tvm.ResNet]] = {
    "resnet18": tvm.resnet18,
    "resnet34": tvm.resnet34,
    "resnet50": tvm.resnet50,
}


def build_resnet(name: str, in_channels: int, cifar_stem: bool) -> nn.Module:
    """A randomly initialised torchvision ResNet without its classifier; sets ``out_dim``."""
    net = RESNETS[name](weights=None)
    out_dim = net.fc.in_features
    if cifar_stem:
        net.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
    elif in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    net.fc = nn.Identity()
    net.out_dim = out_dim
    return net
