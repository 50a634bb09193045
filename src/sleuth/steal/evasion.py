"""What a careful thief does to a stolen copy before releasing it: prune it, fine-tune it, or
transform its answers.

Pruning and fine-tuning are the adaptive attacks that a forensic verdict must survive (000 §5.1
names pruning as the attack that trigger watermarks fail against); they change the weights, never
the architecture, so the result is verified like any other suspect. Output transformations cost
the thief nothing (his customers' linear probes and neighbours do not change), so a verdict must
not change under them either.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from sleuth.data import adapt
from sleuth.data.augment import SimCLRAugment
from sleuth.errors import SleuthError
from sleuth.models import Encoder, projection_head
from sleuth.models.losses import nt_xent


def prune(encoder: Encoder, amount: float) -> Encoder:
    """A copy with the ``amount`` fraction of smallest-magnitude weights, over all convolutions
    and linear layers together (global L1 pruning), set to zero for good."""
    if not 0 < amount < 1:
        raise SleuthError(f"prune amount must be in (0, 1), got {amount}")
    pruned = copy.deepcopy(encoder)
    params = [(m, "weight") for m in pruned.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    torch_prune.global_unstructured(params, torch_prune.L1Unstructured, amount=amount)
    for module, name in params:
        torch_prune.remove(module, name)
    return pruned.eval()


def finetune(
    encoder: Encoder,
    images: torch.Tensor,
    *,
    epochs: int,
    lr: float = 1e-4,
    batch_size: int = 128,
    seed: int = 0,
) -> Encoder:
    """A copy trained further with SimCLR (NT-Xent, a fresh projection head) on the thief's own
    ``images`` (uint8 or float [0, 1], N×C×H×W), which the victim never answered."""
    if epochs < 1 or batch_size < 2 or len(images) < batch_size:
        raise SleuthError(
            f"fine-tuning needs epochs >= 1 and at least one batch of {batch_size} images "
            f"(got {epochs} epochs, {len(images)} images)"
        )
    torch.manual_seed(seed)
    tuned = copy.deepcopy(encoder).train()
    head = projection_head(tuned.rep_dim, tuned.rep_dim, 64)
    opt = torch.optim.Adam([*tuned.parameters(), *head.parameters()], lr=lr)
    gen, augment = torch.Generator().manual_seed(seed), SimCLRAugment()
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=gen)
        for i in range(0, len(images) - batch_size + 1, batch_size):
            x = adapt(images[order[i : i + batch_size]], tuned.config.input_spec)
            z = head(tuned(torch.cat([augment(x, gen), augment(x, gen)])))
            loss = nt_xent(*z.chunk(2))
            opt.zero_grad()
            loss.backward()
            opt.step()
    return tuned.eval()


def _orthogonal(d: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random d × d rotation (QR of a Gaussian matrix, signs fixed)."""
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diag(r))


# the thief's secret map, drawn once and applied to every answer, or fresh noise per answer
OUTPUT_TRANSFORMS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "rotation": lambda reps, rng: reps @ _orthogonal(reps.shape[1], rng),
    "permutation": lambda reps, rng: reps[:, rng.permutation(reps.shape[1])],
    "scale-shift": lambda reps, rng: rng.uniform(0.2, 5) * reps + rng.normal(0, 5, reps.shape[1]),
    # Gaussian noise of 10 % of each coordinate's spread over the answers
    "noise-10%": lambda reps, rng: reps + rng.normal(size=reps.shape) * 0.1 * reps.std(axis=0),
}


def transform_outputs(name: str, reps: np.ndarray, seed: int) -> np.ndarray:
    """``reps`` (N × D answers) as a thief who applies ``name`` of ``OUTPUT_TRANSFORMS`` would
    return them, his secret drawn from ``seed``."""
    if name not in OUTPUT_TRANSFORMS:
        raise SleuthError(
            f"unknown output transform {name!r} (known: {', '.join(OUTPUT_TRANSFORMS)})"
        )
    out = OUTPUT_TRANSFORMS[name](np.asarray(reps, np.float64), np.random.default_rng(seed))
    return out.astype(np.float32)
