"""Contrastive losses shared by training (embed) and stealing: pure functions of tensors."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """SimCLR's NT-Xent: row i of ``z1`` and row i of ``z2`` are positives, every other row of
    the 2N is a negative; cosine similarities over ``temperature``, mean over all 2N anchors."""
    if temperature < 1e-8:
        raise ValueError(f"temperature must be positive and not tiny, got {temperature}")
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(f"expected two (N, D) tensors of one shape, got {z1.shape}, {z2.shape}")
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = z @ z.T / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, targets)
