"""Rotation labelling, interval parsing and the rotated views of the watermark."""

import pytest
import torch

from sleuth.data.augment import rotate
from sleuth.data.watermark import RotationWatermark
from sleuth.errors import SleuthError


def test_half_split_labels_the_papers_way():
    wm = RotationWatermark.parse("half")
    angles = torch.tensor([0.0, 45.0, 179.9, 180.0, 270.0, 359.9, 360.0, -10.0])
    assert wm.label(angles).tolist() == [0, 0, 0, 1, 1, 1, 0, 1]


def test_flip_split_has_gaps_labelled_minus_one():
    wm = RotationWatermark.parse("flip")
    angles = torch.tensor([0.0, 59.0, 60.0, 90.0, 120.0, 180.0, 239.0, 300.0, 330.0])
    assert wm.label(angles).tolist() == [0, 0, -1, -1, 1, 1, 1, 0, 0]


def test_explicit_intervals_and_refusals():
    wm = RotationWatermark.parse("0:90,90:180,180:270")
    assert wm.n_classes == 3 and wm.to_list() == [[0, 90], [90, 180], [180, 270]]
    for bad in ("0:180", "0:200,100:300", "abc", "10:5,20:30", "0:180,360:400"):
        with pytest.raises(SleuthError):
            RotationWatermark.parse(bad)


def test_views_one_per_class_with_angles_inside_their_interval():
    wm = RotationWatermark.parse("flip")
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 1] * 500)
    angles = wm.sample_angles(labels, g)
    assert torch.equal(wm.label(angles), labels)
    x = torch.rand(4, 1, 8, 8)
    views, view_labels = wm.views(x, torch.Generator().manual_seed(1))
    assert views.shape == (8, 1, 8, 8)
    assert view_labels.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_rotate_by_right_angles_matches_rot90():
    x = torch.arange(36.0).view(1, 1, 6, 6)
    assert torch.allclose(rotate(x, torch.tensor([0.0])), x, atol=1e-4)
    r180 = rotate(x, torch.tensor([180.0]))
    assert torch.allclose(r180, torch.flip(x, dims=(2, 3)), atol=1e-4)
    r90 = rotate(x, torch.tensor([90.0]))
    assert any(torch.allclose(r90, torch.rot90(x, k, dims=(2, 3)), atol=1e-4) for k in (1, 3))


def test_secret_intervals_are_half_turns_at_a_fresh_offset_each_time():
    """The default watermark key: the paper's two half-turns at an offset no seed reproduces."""
    offsets = set()
    for _ in range(200):
        wm = RotationWatermark.secret()
        (lo, mid), (mid2, hi) = wm.intervals
        assert mid == mid2 and mid - lo == pytest.approx(180) and hi - lo == pytest.approx(360)
        assert RotationWatermark.parse(wm.to_spec()) == wm  # recorded explicitly, read back
        offsets.add(lo)
    assert len(offsets) > 150 and min(offsets) >= 0 and max(offsets) < 360
    with pytest.raises(SleuthError, match="drawn once per owner"):
        RotationWatermark.parse("random")
