"""The CPU-fast default trunk: a three-stage ResNet of about 300k parameters.

A stride-2 stem keeps the first stage at half resolution, which is what makes it train at a few
thousand images per second on two CPU cores for 28-32 pixel inputs.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (He et al., 2016)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


MAX_WIDTH = 8192


class SmallResNet(nn.Module):
    """Stem, three residual stages (``widths``), global average pooling; outputs ``widths[-1]``."""

    def __init__(self, in_channels: int, widths: tuple[int, int, int] = (32, 64, 128)) -> None:
        super().__init__()
        ok = isinstance(widths, list | tuple) and len(widths) == 3
        if not ok or not all(
            isinstance(w, int) and not isinstance(w, bool) and 1 <= w <= MAX_WIDTH for w in widths
        ):
            raise ValueError(f"widths must be three integers from 1 to {MAX_WIDTH}, got {widths!r}")
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.layer1 = BasicBlock(widths[0], widths[0], 1)
        self.layer2 = BasicBlock(widths[0], widths[1], 2)
        self.layer3 = BasicBlock(widths[1], widths[2], 2)
        self.out_dim = widths[2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
