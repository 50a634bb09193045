"""The careful thief's transformations: pruning and fine-tuning change weights, not architecture,
leave the stolen copy they start from untouched, and refuse settings that would do nothing."""

import pytest
import torch
from torch import nn

from sleuth.data import input_spec_for, load_images
from sleuth.errors import SleuthError
from sleuth.models import Encoder, encoder_config
from sleuth.steal.evasion import finetune, prune


@pytest.fixture(scope="module")
def encoder_and_images(tmp_path_factory, make_images):
    import numpy as np

    root = tmp_path_factory.mktemp("evasion")
    x, y = make_images(n=80)
    np.savez(root / "d.npz", x=x, y=y)
    data = load_images(f"npz:{root / 'd.npz'}", "train")
    torch.manual_seed(0)
    return Encoder(encoder_config("smallresnet", input_spec_for(data), 16)).eval(), data.images


def _weights(enc):
    return [m.weight for m in enc.modules() if isinstance(m, nn.Conv2d | nn.Linear)]


def test_prune_zeroes_the_global_fraction_of_smallest_weights(encoder_and_images):
    enc, images = encoder_and_images
    before = [w.detach().clone() for w in _weights(enc)]
    pruned = prune(enc, 0.5)
    weights = torch.cat([w.detach().flatten() for w in _weights(pruned)])
    assert abs(float((weights == 0).float().mean()) - 0.5) < 0.01
    # the survivors are the largest magnitudes: every kept weight >= every pruned one's magnitude
    original = torch.cat([w.flatten() for w in before]).abs()
    assert original[weights != 0].min() >= original[weights == 0].max()
    assert all(torch.equal(a, b) for a, b in zip(before, _weights(enc), strict=True))
    assert not any(hasattr(m, "weight_orig") for m in pruned.modules())  # pruning made permanent
    assert pruned.represent(images[:4]).shape == (4, 16)
    for bad in (0, 1, -0.1):
        with pytest.raises(SleuthError, match="amount"):
            prune(enc, bad)


def test_finetune_moves_the_weights_reproducibly(encoder_and_images):
    enc, images = encoder_and_images
    before = [p.detach().clone() for p in enc.parameters()]
    a = finetune(enc, images, epochs=1, lr=1e-3, batch_size=16, seed=3)
    b = finetune(enc, images, epochs=1, lr=1e-3, batch_size=16, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(before, enc.parameters(), strict=True))
    assert any(not torch.equal(x, y) for x, y in zip(before, a.parameters(), strict=True))
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    assert not a.training and a.config == enc.config
    with pytest.raises(SleuthError, match="at least one batch"):
        finetune(enc, images[:8], epochs=1, batch_size=16)
