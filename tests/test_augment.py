"""The batched SimCLR augmentations: identities at their degenerate settings, seeded determinism."""

import pytest
import torch

from sleuth.data.augment import SimCLRAugment, grayscale

X = torch.rand(5, 3, 12, 12, generator=torch.Generator().manual_seed(0))


def test_full_crop_without_flip_is_identity_and_with_flip_is_mirror():
    keep = SimCLRAugment(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0)
    assert torch.allclose(keep.crop_flip(X, torch.Generator().manual_seed(1)), X, atol=1e-5)
    flip = SimCLRAugment(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=1.0)
    assert torch.allclose(flip.crop_flip(X, torch.Generator().manual_seed(1)), X.flip(3), atol=1e-5)


def test_colour_off_is_identity_and_grayscale_always_gives_luma():
    off = SimCLRAugment(jitter_p=0.0, grayscale_p=0.0)
    assert torch.equal(off.colour(X, torch.Generator().manual_seed(2)), X)
    grey = SimCLRAugment(jitter_p=0.0, grayscale_p=1.0)
    out = grey.colour(X, torch.Generator().manual_seed(2))
    luma = 0.299 * X[:, 0] + 0.587 * X[:, 1] + 0.114 * X[:, 2]
    assert torch.allclose(out, luma.unsqueeze(1).expand_as(X), atol=1e-6)
    assert torch.equal(grayscale(X[:, :1]), X[:, :1])


def test_same_seed_same_views_and_outputs_stay_in_range():
    aug = SimCLRAugment()
    a = aug(X, torch.Generator().manual_seed(3))
    b = aug(X, torch.Generator().manual_seed(3))
    c = aug(X, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == X.shape and a.min() >= 0 and a.max() <= 1
    grey = aug(X[:, :1], torch.Generator().manual_seed(3))
    assert grey.shape == (5, 1, 12, 12)


def test_invalid_parameters_are_refused():
    with pytest.raises(ValueError):
        SimCLRAugment(crop_scale=(0.0, 1.0))
    with pytest.raises(ValueError):
        SimCLRAugment(flip_p=1.5)
