"""sleuth.data: specs, loaders and their errors, splits, fingerprints and input adapters."""

from __future__ import annotations

import gzip
import json
import math
from importlib import resources
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from sleuth.data import (
    DataError,
    DataSpec,
    ImageSet,
    InputSpec,
    Split,
    adapt,
    available_parts,
    fingerprint,
    input_spec_for,
    load_images,
    make_split,
    normalise,
    parse_spec,
    to_float,
)
from sleuth.data.idx import read_idx
from sleuth.data.loaders import DEMO_FILES
from sleuth.data.split import holdout
from sleuth.errors import SleuthError

# Pinned: if the demo files, the hold-out rule or the hashing change, owner keys stop matching.
DEMO_TRAIN_SHA256 = "8fd9c7ca9055412cb372c42d44ff49dd37b511e5dca9a1edeb5ad894d41022cc"


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def _write_idx(directory: Path, prefix: str, images: np.ndarray, labels: np.ndarray, gz=True):
    for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
        raw = _idx_bytes(array)
        name = directory / f"{prefix}-{kind}-ubyte"
        if gz:
            name.with_name(name.name + ".gz").write_bytes(gzip.compress(raw))
        else:
            name.write_bytes(raw)


def _rng_images(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.fixture(scope="module")
def demo() -> tuple[ImageSet, ImageSet]:
    return load_images("demo", "train"), load_images("demo", "test")


# --- specs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["demo", "fmnist:/a/b", "mnist:rel/dir", "cifar10:C:/data", "folder:/x?size=64", "h5:f.h5"],
)
def test_spec_round_trip(text):
    spec = parse_spec(text)
    assert str(spec) == text
    assert parse_spec(str(spec)) == spec
    assert hash(parse_spec(text)) == hash(spec)


def test_spec_fields_and_canonical_options():
    spec = parse_spec(" folder:C:/photos?size=064 ")
    assert (spec.kind, spec.location, dict(spec.options)) == ("folder", "C:/photos", {"size": "64"})
    assert str(spec) == "folder:C:/photos?size=64"
    assert DataSpec("demo") == parse_spec("demo")
    assert DataSpec("folder", "d", {"size": "16"}) == parse_spec("folder:d?size=16")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nope:x", "unknown dataset kind 'nope'"),
        ("fmnist", "write it as fmnist:DIR"),
        ("cifar10:", "write it as cifar10:ROOT"),
        ("demo:somewhere", "write it as demo"),
        ("npz:f.npz?size=32", "unknown option 'size'"),
        ("folder:d?colour=red", "unknown option 'colour'"),
        ("folder:d?size=big", "bad option size"),
        ("folder:d?size=4", "from 8 to 1024"),
        ("folder:d?size", "expected key=value"),
        ("folder:d?size=8&size=9", "expected key=value"),
    ],
)
def test_bad_specs_raise_one_line_data_error(text, expected):
    with pytest.raises(DataError, match=expected) as info:
        parse_spec(text)
    assert isinstance(info.value, SleuthError)
    assert "\n" not in str(info.value)


def test_unknown_kind_lists_the_valid_ones():
    with pytest.raises(DataError) as info:
        load_images("imagenet:/data")
    for usage in ("demo", "fmnist:DIR", "cifar10:ROOT", "stl10:ROOT", "folder:DIR", "h5:FILE"):
        assert usage in str(info.value)


# --- demo ----------------------------------------------------------------------------------------


def test_demo_parts_shapes_and_labels(demo):
    train, test = demo
    assert train.images.shape == (8000, 1, 28, 28) and test.images.shape == (2000, 1, 28, 28)
    assert train.images.dtype == torch.uint8 and train.images.is_contiguous()
    assert train.labels.dtype == torch.int64
    assert torch.bincount(train.labels).tolist() == [800] * 10
    assert torch.bincount(test.labels).tolist() == [200] * 10
    assert (train.spec, train.part, test.part) == ("demo", "train", "test")
    assert (train.channels, train.height, train.width) == (1, 28, 28)
    assert available_parts("demo") == ("train", "test")


def test_demo_parts_are_a_disjoint_fixed_partition(demo):
    train, test = demo
    root = resources.files("sleuth.data") / "demo"
    everything = read_idx(root / DEMO_FILES[0])
    labels = read_idx(root / DEMO_FILES[1]).astype(np.int64)
    train_idx, test_idx = holdout(len(labels), labels)
    assert not set(train_idx) & set(test_idx)
    assert sorted([*train_idx, *test_idx]) == list(range(10000))
    assert np.array_equal(train.images[:, 0].numpy(), everything[train_idx])
    assert np.array_equal(test.labels.numpy(), labels[test_idx])
    assert fingerprint(train) == DEMO_TRAIN_SHA256
    assert fingerprint(load_images("demo")) == DEMO_TRAIN_SHA256


def test_asking_for_a_missing_part_lists_the_parts():
    with pytest.raises(DataError, match=r"no part 'unlabeled' \(available: train, test\)"):
        load_images("demo", "unlabeled")


# --- IDX -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fmnist", "mnist"])
def test_idx_directory_round_trip(tmp_path, kind):
    x_train, y_train = _rng_images((6, 5, 4)), np.arange(6) % 3
    x_test, y_test = _rng_images((3, 5, 4), seed=1), np.array([2, 0, 1])
    _write_idx(tmp_path, "train", x_train, y_train)
    _write_idx(tmp_path, "t10k", x_test, y_test, gz=False)  # uncompressed names work too
    train = load_images(f"{kind}:{tmp_path}", "train")
    test = load_images(f"{kind}:{tmp_path}", "test")
    assert np.array_equal(train.images.numpy(), x_train[:, None])
    assert train.labels.tolist() == y_train.tolist()
    assert np.array_equal(test.images.numpy(), x_test[:, None])
    assert test.labels.tolist() == [2, 0, 1]


def _corrupt_truncated(raw: bytes) -> bytes:
    return gzip.compress(raw)[:-12]


def _corrupt_magic(raw: bytes) -> bytes:
    return gzip.compress(b"\x00\x00\x0d" + raw[3:])


def _corrupt_size(raw: bytes) -> bytes:
    return gzip.compress(raw[:-1])


def _corrupt_not_gzip(raw: bytes) -> bytes:
    return b"this is not gzip at all"


@pytest.mark.parametrize(
    "corrupt", [_corrupt_truncated, _corrupt_magic, _corrupt_size, _corrupt_not_gzip]
)
def test_corrupt_idx_images_name_the_file(tmp_path, corrupt):
    _write_idx(tmp_path, "train", _rng_images((4, 28, 28)), np.arange(4))
    images = tmp_path / "train-images-idx3-ubyte.gz"
    images.write_bytes(corrupt(gzip.decompress(images.read_bytes())))
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz") as info:
        load_images(f"fmnist:{tmp_path}")
    assert "\n" not in str(info.value)


def test_idx_label_count_mismatch_names_the_labels_file(tmp_path):
    _write_idx(tmp_path, "train", _rng_images((4, 6, 6)), np.arange(5))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz"):
        load_images(f"fmnist:{tmp_path}")


def test_idx_missing_file_is_named(tmp_path):
    _write_idx(tmp_path, "train", _rng_images((4, 6, 6)), np.arange(4))
    assert load_images(f"fmnist:{tmp_path}").images.shape == (4, 1, 6, 6)
    with pytest.raises(DataError, match="not found: .*t10k-images-idx3-ubyte.gz"):
        load_images(f"fmnist:{tmp_path}", "test")


# --- npz and h5 ----------------------------------------------------------------------------------


def _write(fmt: str, path: Path, **arrays: np.ndarray) -> str:
    if fmt == "npz":
        np.savez(path, **arrays)
    else:
        with h5py.File(path, "w") as f:
            for key, value in arrays.items():
                f.create_dataset(key, data=value)
    return f"{fmt}:{path}"


@pytest.mark.parametrize("fmt", ["npz", "h5"])
def test_array_file_grey_with_labels_gets_stratified_holdout(tmp_path, fmt):
    x, y = _rng_images((20, 8, 8)), np.repeat([0, 1], 10)
    spec = _write(fmt, tmp_path / f"d.{fmt}", x=x, y=y)
    train, test = load_images(spec, "train"), load_images(spec, "test")
    assert (len(train), len(test)) == (16, 4)
    assert test.labels.tolist() == [0, 0, 1, 1]  # 20% of each class, in file order
    assert train.images.shape == (16, 1, 8, 8)
    rebuilt = {bytes(img) for img in x.reshape(20, -1)}
    seen = [bytes(img) for img in torch.cat([train.images, test.images]).reshape(20, -1).numpy()]
    assert set(seen) == rebuilt and len(seen) == 20


@pytest.mark.parametrize("fmt", ["npz", "h5"])
def test_array_file_channels_last_without_labels(tmp_path, fmt):
    x = _rng_images((10, 6, 6, 3))
    spec = _write(fmt, tmp_path / f"d.{fmt}", x=x)
    train = load_images(spec)
    assert train.labels is None
    assert train.images.shape == (8, 3, 6, 6)
    assert np.array_equal(train.images[0].numpy(), x[holdout(10, None)[0][0]].transpose(2, 0, 1))


@pytest.mark.parametrize("fmt", ["npz", "h5"])
def test_array_file_with_test_part_uses_it(tmp_path, fmt):
    x, x_test = _rng_images((5, 3, 8, 8)), _rng_images((2, 8, 8, 1), seed=1)
    spec = _write(fmt, tmp_path / f"d.{fmt}", x=x, y=np.arange(5), x_test=x_test)
    assert available_parts(spec) == ("train", "test")
    train, test = load_images(spec, "train"), load_images(spec, "test")
    assert np.array_equal(train.images.numpy(), x)  # (N, C, H, W) accepted as is
    assert train.labels.tolist() == [0, 1, 2, 3, 4]
    assert np.array_equal(test.images.numpy(), x_test.transpose(0, 3, 1, 2))
    assert test.labels is None


@pytest.mark.parametrize("fmt", ["npz", "h5"])
@pytest.mark.parametrize(
    ("arrays", "expected"),
    [
        ({"x": np.zeros((4, 8, 8), np.float32)}, "must be uint8"),
        ({"x": np.zeros((4, 8, 8, 2), np.uint8)}, "got shape"),
        ({"x": np.zeros((4, 8, 8), np.uint8), "y": np.zeros(3, np.int64)}, "labels must be 4"),
        ({"x": np.zeros((4, 8, 8), np.uint8), "y": np.zeros(4, np.float64)}, "labels must be 4"),
        ({"images": np.zeros((4, 8, 8), np.uint8)}, "no images 'x' .*images"),
    ],
)
def test_bad_array_files(tmp_path, fmt, arrays, expected):
    spec = _write(fmt, tmp_path / f"d.{fmt}", **arrays)
    with pytest.raises(DataError, match=expected):
        load_images(spec)


@pytest.mark.parametrize("fmt", ["npz", "h5"])
def test_garbage_array_file_is_a_data_error(tmp_path, fmt):
    path = tmp_path / f"d.{fmt}"
    path.write_bytes(b"\x93NUMPY garbage" * 10)
    with pytest.raises(DataError, match=str(path)):
        load_images(f"{fmt}:{path}")


def test_npz_refuses_pickled_objects_and_single_arrays(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(DataError, match="evil.npz"):
        load_images(f"npz:{path}")
    np.save(tmp_path / "single.npy", np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(DataError, match="not an npz archive"):
        load_images(f"npz:{tmp_path / 'single.npy'}")


# --- folder --------------------------------------------------------------------------------------


def _image_folder(root: Path) -> Path:
    for cls, colour, sizes in (("cat", (255, 0, 0), (10, 14)), ("ant", (0, 0, 255), (12, 9, 20))):
        (root / cls).mkdir(parents=True)
        for i, side in enumerate(sizes):
            Image.new("RGB", (side, side + i), colour).save(root / cls / f"{i}.png")
    Image.new("L", (16, 16), 128).save(root / "ant" / "grey.png")
    return root


def test_folder_classes_sorted_rgb_and_sized(tmp_path):
    root = _image_folder(tmp_path / "photos")
    parts = [load_images(f"folder:{root}?size=8", part) for part in ("train", "test")]
    images = torch.cat([part.images for part in parts])
    labels = torch.cat([part.labels for part in parts])
    assert images.shape == (6, 3, 8, 8)
    assert sorted(labels.tolist()) == [0, 0, 0, 0, 1, 1]  # "ant" < "cat"
    colours = {0: ([0, 0, 255], [128] * 3), 1: ([255, 0, 0],)}
    for image, label in zip(images, labels, strict=True):
        assert image[:, 4, 4].tolist() in colours[int(label)]
    assert load_images(f"folder:{root}").images.shape[1:] == (3, 32, 32)


def test_folder_errors_name_the_problem(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="class folder"):
        load_images(f"folder:{empty}")
    root = _image_folder(tmp_path / "photos")
    (root / "cat" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png"):  # a part reads its own files only
        for part in ("train", "test"):
            load_images(f"folder:{root}", part)


# --- missing data --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fmnist", "mnist", "folder", "npz", "h5", "cifar10", "stl10"])
def test_missing_path_is_not_found(tmp_path, kind):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=f"not found: {missing}$"):
        load_images(f"{kind}:{missing}")


@pytest.mark.parametrize("kind", ["cifar10", "cifar100", "svhn", "stl10"])
def test_torchvision_empty_root_suggests_download(tmp_path, kind):
    with pytest.raises(DataError, match="--download") as info:
        load_images(f"{kind}:{tmp_path}", "test")
    assert str(tmp_path) in str(info.value)
    assert list(tmp_path.iterdir()) == []  # nothing was downloaded


def test_stl10_has_an_unlabeled_part(tmp_path):
    assert available_parts(f"stl10:{tmp_path}") == ("train", "test", "unlabeled")


# --- splits --------------------------------------------------------------------------------------


def test_make_split_is_a_deterministic_partition():
    split = make_split(101, 0.3, seed=7)
    assert split == make_split(101, 0.3, seed=7)
    assert split != make_split(101, 0.3, seed=8)
    assert (len(split.private), len(split.public)) == (71, 30)
    assert np.array_equal(np.sort(np.concatenate([split.private, split.public])), np.arange(101))
    assert np.all(np.diff(split.private) > 0) and np.all(np.diff(split.public) > 0)
    assert split.private.dtype == np.int64
    assert make_split(101, 0.3, 7).public.tolist() == split.public.tolist()


@pytest.mark.parametrize(
    ("n", "fraction", "seed"),
    [
        (10, 0.0, 0),
        (10, 1.0, 0),
        (10, -0.2, 0),
        (10, 1.5, 0),
        (10, math.nan, 0),
        (1, 0.5, 0),
        (10, 0.5, -1),
    ],
)
def test_make_split_rejects_bad_arguments(n, fraction, seed):
    with pytest.raises(DataError):
        make_split(n, fraction, seed)


def test_split_dict_round_trip_through_json():
    split = make_split(20, 0.25, seed=3)
    record = json.loads(json.dumps({**split.to_dict(), "data_spec": "demo", "fingerprint": "ab"}))
    assert Split.from_dict(record) == split
    with pytest.raises(DataError, match="missing 'public'"):
        Split.from_dict({"private": [1], "seed": 0, "public_fraction": 0.5})


def test_subset_takes_images_and_labels_in_order(demo):
    train, _ = demo
    for indices in ([5, 0, 7], np.array([5, 0, 7]), torch.tensor([5, 0, 7])):
        part = train.subset(indices)
        assert torch.equal(part.images, train.images[[5, 0, 7]])
        assert part.labels.tolist() == train.labels[[5, 0, 7]].tolist()
    with pytest.raises(DataError, match="out of range"):
        train.subset([0, len(train)])


# --- fingerprints --------------------------------------------------------------------------------


def test_fingerprint_is_sensitive_to_one_pixel_and_to_labels():
    images = torch.from_numpy(_rng_images((4, 1, 8, 8)))
    labels = torch.arange(4)
    base = fingerprint(ImageSet(images, labels, "x", "train"))
    assert base == fingerprint(ImageSet(images.clone(), labels.clone(), "other", "test"))
    changed = images.clone()
    changed[2, 0, 3, 5] ^= 1
    assert fingerprint(ImageSet(changed, labels, "x", "train")) != base
    assert fingerprint(ImageSet(images, labels.flip(0), "x", "train")) != base
    assert fingerprint(ImageSet(images, None, "x", "train")) != base
    assert fingerprint(ImageSet(images.reshape(4, 1, 4, 16).contiguous(), labels, "x", "t")) != base
    assert len(base) == 64 and int(base, 16) >= 0


# --- input specs and adapters --------------------------------------------------------------------


def test_input_spec_round_trip():
    spec = InputSpec(3, 32, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3))
    assert InputSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert InputSpec(1, 8, [0.5], [0.1]) == InputSpec(1, 8, (0.5,), (0.1,))


@pytest.mark.parametrize(
    "record",
    [
        {"channels": 2, "size": 32, "mean": [0.5, 0.5], "std": [0.2, 0.2]},
        {"channels": 1, "size": 4, "mean": [0.5], "std": [0.2]},
        {"channels": 3, "size": 32, "mean": [0.5], "std": [0.2]},
        {"channels": 1, "size": 32, "mean": [0.5], "std": [0.0]},
        {"channels": 1, "size": 32, "mean": [math.nan], "std": [0.2]},
        {"channels": 1, "size": 32, "mean": [0.5]},
        {"channels": "one", "size": 32, "mean": [0.5], "std": [0.2]},
    ],
)
def test_input_spec_validation(record):
    with pytest.raises(DataError, match="bad input spec"):
        InputSpec.from_dict(record)


def test_input_spec_for_measures_mean_and_std():
    images = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    images[0, 0] = 255  # red channel: half the images white -> mean 0.5, std 0.5
    images[:, 1] = 51  # green constant 0.2 -> std floored at one grey level
    spec = input_spec_for(ImageSet(images, None, "x", "train"))
    assert (spec.channels, spec.size) == (3, 8)
    assert spec.mean == pytest.approx((0.5, 0.2, 0.0))
    assert spec.std == pytest.approx((0.5, 1 / 255, 1 / 255))
    only_first = input_spec_for(ImageSet(images, None, "x", "train"), max_images=1)
    assert only_first.mean[0] == pytest.approx(1.0)


def test_input_spec_for_rejects_non_square_images():
    data = ImageSet(torch.zeros(2, 1, 8, 10, dtype=torch.uint8), None, "npz:f", "train")
    with pytest.raises(DataError, match="8x10 .*size="):
        input_spec_for(data)


def test_to_float_scales_uint8_and_passes_floats_through():
    x = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 1, 1, 3)
    assert to_float(x).dtype == torch.float32
    assert to_float(x).flatten().tolist() == pytest.approx([0.0, 0.2, 1.0])
    y = torch.rand(1, 1, 2, 2)
    assert to_float(y) is y


def test_adapt_grey_rgb_grey_round_trip_and_luma():
    grey = torch.rand(3, 1, 8, 8)
    rgb = adapt(grey, InputSpec(3, 8, (0.5,) * 3, (0.5,) * 3))
    assert rgb.shape == (3, 3, 8, 8)
    assert torch.equal(rgb[:, 0], grey[:, 0]) and torch.equal(rgb[:, 2], grey[:, 0])
    back = adapt(rgb, InputSpec(1, 8, (0.5,), (0.5,)))
    assert torch.allclose(back, grey, atol=1e-6)
    pixel = torch.tensor([1.0, 0.5, 0.25]).view(1, 3, 1, 1).expand(1, 3, 8, 8)
    luma = adapt(pixel, InputSpec(1, 8, (0.5,), (0.5,)))
    assert luma[0, 0, 0, 0].item() == pytest.approx(0.299 + 0.587 * 0.5 + 0.114 * 0.25)


def test_adapt_resizes_and_converts_uint8():
    images = torch.full((2, 3, 28, 20), 255, dtype=torch.uint8)
    out = adapt(images, InputSpec(1, 32, (0.5,), (0.5,)))
    assert out.shape == (2, 1, 32, 32) and out.dtype == torch.float32
    assert torch.allclose(out, torch.ones_like(out), atol=1e-5)  # constant stays constant
    dots = torch.zeros(1, 1, 32, 32)
    dots[..., ::4, ::4] = 1  # plain bilinear at 1/4 would sample only the gaps: all zero
    assert adapt(dots, InputSpec(1, 8, (0.5,), (0.5,))).mean().item() == pytest.approx(
        1 / 16, abs=0.02
    )
    same = torch.rand(2, 1, 16, 16)
    assert torch.equal(adapt(same, InputSpec(1, 16, (0.5,), (0.5,))), same)
    assert adapt(same.to("meta"), InputSpec(3, 8, (0.5,) * 3, (0.5,) * 3)).device.type == "meta"


def test_normalise_hand_computed():
    x = torch.tensor([[[[0.5]], [[0.0]], [[1.0]]]])  # (1, 3, 1, 1)
    spec = InputSpec(3, 8, (0.5, 0.25, 0.5), (0.25, 0.5, 0.125))
    assert normalise(x, spec).flatten().tolist() == pytest.approx([0.0, -0.5, 4.0])
    assert normalise(x.double(), spec).dtype == torch.float64


@pytest.mark.parametrize("kind", ["soft", "external", "external storage"])
def test_hdf5_links_and_outside_data_are_refused(tmp_path, kind):
    """A hostile h5: data file whose x is a soft link, an external link to another file, or a
    dataset stored in another file is refused with one line; it is never followed."""
    import h5py

    from sleuth.data.answers import AnswerStore

    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["secret"] = np.zeros((4, 1, 8, 8), np.uint8)
    (tmp_path / "raw.bin").write_bytes(bytes(4 * 64))
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:
        f["real"] = np.zeros((4, 1, 8, 8), np.uint8)
        if kind == "soft":
            f["x"] = h5py.SoftLink("/real")
        elif kind == "external":
            f["x"] = h5py.ExternalLink(str(other), "/secret")
        else:
            f.create_dataset(
                "x", (4, 1, 8, 8), np.uint8, external=[(str(tmp_path / "raw.bin"), 0, 256)]
            )
        f.attrs["format"] = "sleuth-answers"
        f["answers"] = h5py.SoftLink("/real") if kind == "soft" else np.zeros((4, 2), np.float32)
    with pytest.raises(SleuthError, match="refused"):
        load_images(f"h5:{path}", "train")
    if kind == "soft":
        with pytest.raises(SleuthError, match="refused"):
            AnswerStore.read(path)
