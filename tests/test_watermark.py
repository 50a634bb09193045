"""Rotation labelling, interval parsing and the rotated views of the watermark."""

import pytest
import torch

from sleuth.data.augment import rotate
from sleuth.data.watermark import MIN_ARC, RotationWatermark
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


def test_secret_intervals_are_six_alternating_arcs_fresh_each_time():
    """The default key: six arcs of at least 30° covering the circle once, classes alternating,
    a fresh draw every time (no seed reproduces it), read back from its recorded spec."""
    starts = set()
    for _ in range(200):
        wm = RotationWatermark.secret()
        assert wm.classes == (0, 1, 0, 1, 0, 1)
        assert all(hi - lo >= MIN_ARC - 0.1 for lo, hi in wm.intervals)
        assert all(a[1] == b[0] for a, b in zip(wm.intervals, wm.intervals[1:], strict=False))
        assert wm.intervals[-1][1] - wm.intervals[0][0] == pytest.approx(360)
        assert RotationWatermark.parse(wm.to_spec()) == wm  # recorded explicitly, read back
        starts.add(wm.intervals[0][0])
    assert len(starts) > 150 and min(starts) >= 0 and max(starts) < 360
    assert RotationWatermark.arcs(7) == RotationWatermark.arcs(7) != RotationWatermark.arcs(8)
    for kind in ("random", "random-half"):
        with pytest.raises(SleuthError, match="drawn once per owner"):
            RotationWatermark.parse(kind)


def test_secret_half_turns_are_the_papers_at_a_fresh_offset():
    """``random-half``: the paper's two half-turns, turned by a secret offset."""
    offsets = set()
    for _ in range(200):
        wm = RotationWatermark.secret("random-half")
        (lo, mid), (mid2, hi) = wm.intervals
        assert wm.classes is None and mid == mid2
        assert mid - lo == pytest.approx(180) and hi - lo == pytest.approx(360)
        offsets.add(lo)
    assert len(offsets) > 150 and min(offsets) >= 0 and max(offsets) < 360


ARCS = "0:60=0,60:120=1,120:200=0,200:300=1,300:360=0"


def test_several_arcs_share_a_class_and_read_back():
    """A key of several arcs per class: labels follow the arcs' classes, and the spec and the
    owner key's list form both read back to the same key."""
    wm = RotationWatermark.parse(ARCS)
    assert wm.n_classes == 2 and wm.classes == (0, 1, 0, 1, 0)
    assert wm.label(torch.tensor([10.0, 70.0, 150.0, 250.0, 330.0, 365.0])).tolist() == [
        0,
        1,
        0,
        1,
        0,
        0,
    ]
    assert RotationWatermark.parse(wm.to_spec()) == wm
    assert RotationWatermark.from_list(wm.to_list()) == wm
    for bad in ("0:90=0,90:180=2", "0:90=0,90:180=0", "0:90=1,90:180=2", "0:90=0,90:180"):
        with pytest.raises(SleuthError):
            RotationWatermark.parse(bad)


def test_angles_of_a_class_spread_over_its_arcs_by_width():
    """Each class's angles fall in its own arcs, as often as each arc is wide: class 0 holds
    arcs of 60°, 80° and 60° (0.3, 0.4, 0.3 of its width), class 1 of 60° and 100°."""
    wm = RotationWatermark.parse(ARCS)
    labels = torch.tensor([0, 1] * 20_000)
    angles = wm.sample_angles(labels, torch.Generator().manual_seed(0))
    assert torch.equal(wm.label(angles), labels)
    arc = torch.bucketize(angles, torch.tensor([60.0, 120.0, 200.0, 300.0]), right=True)
    share0 = torch.bincount(arc[labels == 0], minlength=5)[[0, 2, 4]] / 20_000
    share1 = torch.bincount(arc[labels == 1], minlength=5)[[1, 3]] / 20_000
    assert torch.allclose(share0, torch.tensor([0.3, 0.4, 0.3]), atol=0.015)
    assert torch.allclose(share1, torch.tensor([0.375, 0.625]), atol=0.015)


def test_one_arc_a_class_draws_the_same_angles_as_before_classes():
    """Keys written before arcs could share a class rebuild their challenges bit for bit."""
    wm = RotationWatermark.turned(1234)
    labels = torch.tensor([0, 1] * 100)
    got = wm.sample_angles(labels, torch.Generator().manual_seed(5))
    u = torch.rand(labels.shape, generator=torch.Generator().manual_seed(5))
    bounds = torch.tensor(wm.intervals)
    assert torch.equal(got, bounds[labels, 0] + u * (bounds[labels, 1] - bounds[labels, 0]))


def test_boundaries_that_float32_cannot_hold_belong_to_one_interval():
    """274.1° is not a float32: in single precision 307.5° fell inside [274.1, 307.5) too and
    this valid key was refused as overlapping."""
    wm = RotationWatermark.parse("21.2:64.8=0,64.8:274.1=1,274.1:307.5=0,307.5:381.2=1")
    assert wm.label(torch.tensor([307.5, 274.1])).tolist() == [1, 0]
