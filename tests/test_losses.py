"""NT-Xent against a slow, loop-by-loop reference of SimCLR's definition."""

import math

import pytest
import torch

from sleuth.models.losses import nt_xent


def reference_nt_xent(z1: torch.Tensor, z2: torch.Tensor, t: float) -> float:
    z = torch.cat([z1, z2]).double()
    n2 = z.shape[0]
    n = n2 // 2
    total = 0.0
    for i in range(n2):
        j = (i + n) % n2
        sims = [
            float(torch.dot(z[i], z[k]) / (z[i].norm() * z[k].norm())) / t
            for k in range(n2)
            if k != i
        ]
        pos = float(torch.dot(z[i], z[j]) / (z[i].norm() * z[j].norm())) / t
        total += -pos + math.log(sum(math.exp(s) for s in sims))
    return total / n2


@pytest.mark.parametrize("n,d,t", [(2, 3, 0.5), (5, 8, 0.1), (8, 4, 1.0)])
def test_matches_reference(n, d, t):
    g = torch.Generator().manual_seed(n * d)
    z1, z2 = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    assert nt_xent(z1, z2, t).item() == pytest.approx(reference_nt_xent(z1, z2, t), rel=1e-5)


def test_symmetric_and_scale_invariant():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    assert nt_xent(z1, z2).item() == pytest.approx(nt_xent(z2, z1).item(), rel=1e-6)
    assert nt_xent(3 * z1, z2).item() == pytest.approx(nt_xent(z1, z2).item(), rel=1e-5)


def test_hand_computed_two_pairs():
    # Orthonormal positives identical: sim(i, pos) = 1, sim to the other pair's two rows = 0.
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t = 0.5
    expected = -2 + math.log(math.exp(2) + 2)  # each anchor: 1 positive (e^2) + 2 negatives (e^0)
    assert nt_xent(z1, z1.clone(), t).item() == pytest.approx(expected, rel=1e-6)


def test_rejects_tiny_temperature_and_bad_shapes():
    z = torch.randn(4, 3)
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(z, z, 0.0)
    with pytest.raises(ValueError, match="shape"):
        nt_xent(z, z[:3])
