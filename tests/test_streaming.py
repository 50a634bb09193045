"""Streaming (issue 18): folder: and h5: data read by index from the files give the same images,
split, fingerprint and encoder as in memory; the threshold and ``stream=`` choose the path;
fingerprints are cached until a file changes; bad data is refused in one line."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from sleuth.cli import app
from sleuth.data import DataError, fingerprint, input_spec_for, lazy, load_images, to_float
from sleuth.data.lazy import BatchReader, LazyImages
from sleuth.data.loaders import FolderRows
from sleuth.embed import EmbedConfig, run_embed
from sleuth.models import load_encoder, load_owner_key
from sleuth.steal.config import StealConfig
from sleuth.steal.run import attacker_images
from sleuth.verify import ChallengeSettings, build_challenge


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Every test its own fingerprint cache (never the user's)."""
    monkeypatch.setenv("SLEUTH_CACHE", str(tmp_path / "cache"))


def _folder(root: Path, n: int = 48, seed: int = 0) -> Path:
    """``n`` RGB and grey PNGs of varied sizes in 3 classes: resizing and conversion matter."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        cls = root / f"c{i % 3}"
        cls.mkdir(parents=True, exist_ok=True)
        side = 12 + i % 7
        pixels = rng.integers(0, 256, (side, side + i % 3, 3), dtype=np.uint8)
        pixels[..., 0] = pixels[..., 0] // 4 + 60 * (i % 3)  # a class signal
        image = Image.fromarray(pixels)
        (image.convert("L") if i % 5 == 0 else image).save(cls / f"{i:03d}.png")
    return root


def _h5(path: Path, n: int = 48, seed: int = 0) -> Path:
    """Channels-last images with labels (the layout is converted on every read)."""
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        f["x"] = rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)
        f["y"] = np.arange(n) % 3
    return path


@pytest.fixture
def specs(tmp_path) -> dict[str, str]:
    """The same data as folder: (resized to 16) and h5: (no stream option: in memory)."""
    return {
        "folder": f"folder:{_folder(tmp_path / 'photos')}?size=16",
        "h5": f"h5:{_h5(tmp_path / 'data.h5')}",
    }


def _stream(spec: str) -> str:
    return spec + ("&" if "?" in spec else "?") + "stream=1"


@pytest.mark.parametrize("kind", ["folder", "h5"])
@pytest.mark.parametrize("part", ["train", "test"])
def test_streamed_part_is_the_in_memory_part(specs, kind, part):
    memory, streamed = load_images(specs[kind], part), load_images(_stream(specs[kind]), part)
    assert not memory.streaming and streamed.streaming
    assert isinstance(streamed.images, LazyImages)
    assert streamed.images.shape == memory.images.shape
    assert torch.equal(streamed.images[:], memory.images)
    assert torch.equal(streamed.labels, memory.labels)
    assert fingerprint(streamed) == fingerprint(memory)
    assert fingerprint(streamed, workers=2) == fingerprint(memory)  # workers keep the order


def test_lazy_indexing_matches_tensor_indexing(specs):
    memory, streamed = load_images(specs["h5"]), load_images(_stream(specs["h5"]))
    x, lazy_x = memory.images, streamed.images
    picks = [3, 0, 3, len(x) - 1]
    assert torch.equal(lazy_x[5], x[5])
    assert torch.equal(lazy_x[2:9], x[2:9])
    assert torch.equal(lazy_x[picks], x[picks])
    assert torch.equal(lazy_x[torch.tensor(picks)], x[torch.tensor(picks)])
    assert torch.equal(lazy_x[np.array(picks)], x[np.array(picks)])
    sub, lazy_sub = memory.subset([7, 1, 4]), streamed.subset([7, 1, 4])
    assert lazy_sub.streaming and torch.equal(lazy_sub.images[:], sub.images)
    assert torch.equal(lazy_sub.subset([2, 0]).images[:], sub.images[[2, 0]])
    assert torch.equal(to_float(lazy_sub.images), to_float(sub.images))
    assert input_spec_for(streamed) == input_spec_for(memory)
    with pytest.raises(DataError, match="out of range"):
        streamed.subset([len(x)])


def test_threshold_and_flag_choose_the_path(specs, monkeypatch):
    spec = specs["folder"]
    nbytes = load_images(spec).images.numel()  # 3 * 16 * 16 per image
    monkeypatch.setattr(lazy, "STREAM_BYTES", nbytes)  # not above: in memory
    assert not load_images(spec).streaming
    monkeypatch.setattr(lazy, "STREAM_BYTES", nbytes - 1)  # above: streams
    assert load_images(spec).streaming
    assert not load_images(spec + "&stream=0").streaming  # forbidden at any size
    monkeypatch.setattr(lazy, "STREAM_BYTES", 1 << 40)
    assert load_images(spec + "&stream=1").streaming  # forced at any size
    assert not load_images(specs["h5"]).streaming


@pytest.mark.parametrize(
    "cores, world, workers", [(1, 1, 0), (2, 1, 0), (3, 1, 2), (8, 1, 4), (8, 2, 3), (8, 4, 0)]
)
def test_default_workers_leave_small_machines_to_torch(cores, world, workers, monkeypatch):
    """A core per training process first; workers only where more than two cores per process
    are left (on two, one worker slowed streamed training: docs/benchmarks.md), at most 4."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(cores)), raising=False)
    assert lazy.default_workers(world) == workers


@pytest.mark.slow
def test_embed_streamed_with_workers_is_the_in_memory_embed(specs, tmp_path):
    """Same batches in the same order: the same split, fingerprint and weights to the bit; the
    owner key then serves verification, stealing and the probe on either path alike."""
    spec = specs["folder"]
    base = dict(epochs=1, batch_size=16, lr=3e-3, wm_fraction=0.5, rep_dim=16, wm_intervals="half")
    run_embed(EmbedConfig(data=spec, **base), tmp_path / "memory", device="cpu")
    run_embed(EmbedConfig(data=_stream(spec), **base), tmp_path / "stream", device="cpu", workers=2)
    keys = {name: load_owner_key(tmp_path / name / "owner-key.pt") for name in ("memory", "stream")}
    for field in ("private", "public", "fingerprint", "seed", "public_fraction"):
        assert getattr(keys["memory"].split, field) == getattr(keys["stream"].split, field)
    encoders = {name: load_encoder(tmp_path / name / "encoder.pt") for name in keys}
    weights = [e.state_dict() for e in encoders.values()]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert keys["stream"].split.data_spec.endswith("stream=1")

    settings = ChallengeSettings(samples=10, noise_points=4, noise_draws=2)
    challenges = [build_challenge(key, settings) for key in keys.values()]
    assert torch.equal(challenges[0].images, challenges[1].images)
    steal = [
        attacker_images(StealConfig(data=d, public_split=True, queries=20), str(tmp_path / n))[1]
        for d, n in ((spec, "memory"), (_stream(spec), "stream"))
    ]
    assert steal[1].streaming and torch.equal(steal[0].images, steal[1].images[:])
    # the linear probe's input: Encoder.represent indexes the images in batches
    test = [load_images(task, "test") for task in (spec, _stream(spec))]
    reps = [encoders["memory"].represent(part.images, batch_size=5) for part in test]
    assert test[1].streaming and torch.equal(reps[0], reps[1])


def test_batch_reader_in_order_with_workers(specs):
    streamed = load_images(_stream(specs["folder"]))
    batches = [torch.tensor([5, 1]), torch.tensor([0]), torch.tensor([7, 7, 2])]
    for workers in (0, 2):
        read = list(BatchReader(streamed.images, torch.device("cpu"), workers)(batches))
        assert [b.tolist() for b in read] == [streamed.images[i].tolist() for i in batches]


def test_fingerprint_is_cached_until_a_file_changes(specs, tmp_path, monkeypatch):
    spec = _stream(specs["folder"])
    first = fingerprint(load_images(spec), workers=0)
    reads = []
    original = FolderRows.read
    monkeypatch.setattr(
        FolderRows, "read", lambda self, rows: reads.append(1) or original(self, rows)
    )
    assert fingerprint(load_images(spec), workers=0) == first and not reads  # from the cache
    assert fingerprint(load_images(spec, "test"), workers=0) and reads  # another part: read
    reads.clear()
    victim = next((tmp_path / "photos" / "c1").iterdir())
    stat = victim.stat()
    Image.new("RGB", (13, 13), (1, 2, 3)).save(victim)
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # even with its old mtime
    changed = fingerprint(load_images(spec), workers=0)
    assert reads and changed != first
    assert changed == fingerprint(load_images(specs["folder"]))  # and the in-memory hash agrees


def test_unwritable_cache_still_fingerprints(specs, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("SLEUTH_CACHE", str(blocker))
    streamed = load_images(_stream(specs["h5"]))
    assert fingerprint(streamed) == fingerprint(load_images(specs["h5"]))


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("folder:{d}?stream=yes", "bad option stream='yes'"),
        ("npz:{d}/x.npz?stream=1", "unknown option 'stream'"),
        ("demo?stream=1", "unknown option 'stream'"),
    ],
)
def test_bad_stream_options_are_refused(tmp_path, spec, expected):
    with pytest.raises(DataError, match=expected):
        load_images(spec.format(d=tmp_path))


def test_hostile_h5_is_refused_when_streamed(tmp_path):
    path = tmp_path / "d.h5"
    with h5py.File(path, "w") as f:
        f["real"] = np.zeros((4, 1, 8, 8), np.uint8)
        f["x"] = h5py.SoftLink("/real")
    with pytest.raises(DataError, match="refused"):
        load_images(f"h5:{path}?stream=1")
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros((4, 8, 8), np.float32)
    with pytest.raises(DataError, match="must be uint8"):
        load_images(f"h5:{path}?stream=1")


def test_broken_image_is_one_line_from_a_worker_and_before_out_is_made(tmp_path):
    root = _folder(tmp_path / "photos")
    broken = root / "c2" / "zzz.png"
    broken.write_bytes(b"not a png")
    streamed = load_images(f"folder:{root}?size=16&stream=1")
    bad = torch.tensor([int(np.flatnonzero(streamed.labels.numpy() == 2)[-1])])
    with pytest.raises(DataError, match=r"^cannot read image .*zzz\.png") as err:
        list(BatchReader(streamed.images, torch.device("cpu"), 1)([bad]))
    assert "\n" not in str(err.value)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        ["embed", "--data", f"folder:{root}?size=16&stream=1", "--epochs", "1"]
        + ["--batch-size", "16", "--out", str(out), "--device", "cpu", "--quiet"],
    )
    assert result.exit_code == 2
    assert "zzz.png" in result.output and "Traceback" not in result.output
    assert not out.exists()
