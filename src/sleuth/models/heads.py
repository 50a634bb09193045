"""The small heads trained beside an encoder: SimCLR's projection head and the watermark's
augmentation predictor (000 §5.1). Both stay with the owner; only the encoder is released."""

from __future__ import annotations

from torch import nn


def projection_head(rep_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """SimCLR's projection head g: an MLP with one hidden layer (Chen et al., 2020)."""
    return nn.Sequential(nn.Linear(rep_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, out_dim))


def augmentation_predictor(rep_dim: int, hidden_dim: int, n_classes: int) -> nn.Sequential:
    """The two-layer MLP telling which private-augmentation interval a representation came from."""
    return nn.Sequential(
        nn.Linear(rep_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, n_classes)
    )
