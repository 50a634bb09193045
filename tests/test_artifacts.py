"""Encoder files and owner keys: round trips, bare state dicts, and refusal of hostile files."""

import os
import pickle
from pathlib import Path

import pytest
import torch

from sleuth.data import InputSpec, OwnerSplit
from sleuth.errors import SleuthError
from sleuth.models import (
    Encoder,
    OwnerKey,
    encoder_config,
    load_encoder,
    load_owner_key,
    save_encoder,
    save_owner_key,
)
from sleuth.models.heads import augmentation_predictor, projection_head

SPEC = InputSpec(1, 16, (0.3,), (0.2,))
X = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(0))


def _encoder(rep_dim=None, arch="smallresnet") -> Encoder:
    torch.manual_seed(0)
    return Encoder(encoder_config(arch, SPEC, rep_dim)).eval()


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_round_trip_keeps_weights_and_metadata(tmp_path, suffix):
    enc = _encoder(rep_dim=24)
    path = save_encoder(enc, tmp_path / f"encoder{suffix}")
    back = load_encoder(path)
    assert back.config == enc.config
    with torch.no_grad():
        assert torch.equal(back(X), enc(X))


def test_pt_and_safetensors_convert_into_each_other(tmp_path):
    enc = _encoder()
    st = save_encoder(enc, tmp_path / "a.safetensors")
    pt = save_encoder(load_encoder(st), tmp_path / "b.pt")
    with torch.no_grad():
        assert torch.equal(load_encoder(pt)(X), enc(X))


def test_encoder_file_loads_with_plain_weights_only_torch_load(tmp_path):
    path = save_encoder(_encoder(), tmp_path / "e.pt")
    obj = torch.load(path, weights_only=True)
    assert obj["format"] == "sleuth-encoder" and obj["arch"] == "smallresnet"
    assert obj["input_spec"]["channels"] == 1 and obj["rep_dim"] == 128


def test_bare_state_dict_needs_arch_and_then_loads(tmp_path):
    enc = _encoder(rep_dim=24)
    path = tmp_path / "bare.pt"
    torch.save({f"module.{k}": v for k, v in enc.backbone.state_dict().items()}, path)
    with pytest.raises(SleuthError, match="--arch"):
        load_encoder(path)
    back = load_encoder(path, arch="smallresnet", input_size=16)
    assert back.rep_dim == 24 and back.config.input_spec.channels == 1
    with pytest.raises(SleuthError, match="resnet18"):
        load_encoder(path, arch="resnet18")


class _Evil:
    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "sleuth-encoder", "payload": _Evil(str(marker))}, path)
    with pytest.raises(SleuthError, match="refused"):
        load_encoder(path)
    with pytest.raises(SleuthError, match="refused"):
        load_owner_key(path)
    raw = tmp_path / "evil.pkl.pt"
    raw.write_bytes(pickle.dumps(_Evil(str(marker))))
    with pytest.raises(SleuthError):
        load_encoder(raw)
    assert not marker.exists()


@pytest.mark.parametrize(
    "content,match",
    [(b"not a zip at all", "not a readable"), (b"", "not a readable")],
)
def test_corrupt_files_give_one_line_errors(tmp_path, content, match):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(SleuthError, match=match) as info:
        load_encoder(path)
    assert "\n" not in str(info.value)
    bad_st = tmp_path / "bad.safetensors"
    bad_st.write_bytes(content + b"xxxxxxxxxx")
    with pytest.raises(SleuthError, match="safetensors"):
        load_encoder(bad_st)


def test_missing_file_and_wrong_format(tmp_path):
    with pytest.raises(SleuthError, match="not found"):
        load_encoder(tmp_path / "nope.pt")
    path = tmp_path / "other.pt"
    torch.save({"format": "something-else", "format_version": 1}, path)
    with pytest.raises(SleuthError, match="sleuth-encoder"):
        load_encoder(path)
    torch.save({"format": "sleuth-encoder", "format_version": 99}, path)
    with pytest.raises(SleuthError, match="format_version"):
        load_encoder(path)


SPLIT = {
    "data_spec": "demo",
    "part": "train",
    "fingerprint": "ab" * 32,
    "private": [0, 2],
    "public": [1],
    "seed": 3,
    "public_fraction": 0.5,
}


def _key_heads():
    torch.manual_seed(0)
    return projection_head(8, 8, 4), augmentation_predictor(8, 6, 2)


def test_owner_key_round_trip(tmp_path):
    head, pred = _key_heads()
    key = OwnerKey(
        rep_dim=8,
        projection={"hidden_dim": 8, "out_dim": 4, "state_dict": head.state_dict()},
        predictor={"hidden_dim": 6, "n_classes": 2, "state_dict": pred.state_dict()},
        watermark={"kind": "rotation", "intervals": [[0.0, 180.0], [180.0, 360.0]]},
        split=OwnerSplit.from_dict(SPLIT),
        seed=7,
        config={"epochs": 1},
    )
    back = load_owner_key(save_owner_key(key, tmp_path / "owner-key.pt"))
    assert back.split == key.split and back.watermark == key.watermark and back.seed == 7
    assert back.split.private == (0, 2) and back.split.public_fraction == 0.5
    h = torch.randn(3, 8)
    with torch.no_grad():
        assert torch.equal(back.augmentation_predictor()(h), pred.eval()(h))
        assert torch.equal(back.projection_head()(h), head.eval()(h))


def _old_key_file(path: Path, split=SPLIT) -> Path:
    """An owner key as sleuth wrote it while its split was a plain dict (docs/formats.md)."""
    head, pred = _key_heads()
    obj = {
        "format": "sleuth-owner-key",
        "format_version": 1,
        "rep_dim": 8,
        "projection": {"hidden_dim": 8, "out_dim": 4, "state_dict": head.state_dict()},
        "predictor": {"hidden_dim": 6, "n_classes": 2, "state_dict": pred.state_dict()},
        "watermark": {"kind": "rotation", "intervals": [[0.0, 180.0], [180.0, 360.0]]},
        "split": split,
        "seed": 7,
        "config": {"epochs": 1},
    }
    with open(path, "wb") as f:
        torch.save(obj, f)
    return path


def test_an_owner_key_written_before_the_split_was_typed_loads_the_same(tmp_path):
    """The split's fields read back from an old key, and writing it again gives the same
    bytes: the file format did not change."""
    old = _old_key_file(tmp_path / "old.pt")
    key = load_owner_key(old)
    assert key.split.to_dict() == SPLIT
    assert (key.split.data_spec, key.split.part, key.split.fingerprint) == (
        "demo",
        "train",
        "ab" * 32,
    )
    assert (key.split.private, key.split.public, key.split.seed) == ((0, 2), (1,), 3)
    again = save_owner_key(key, tmp_path / "again.pt")
    assert again.read_bytes() == old.read_bytes()


@pytest.mark.parametrize(
    "change",
    [
        "not a record",
        {"private": "0, 2"},
        {"private": [0, 1.5]},
        {"private": [True]},
        {"public": [-1]},
        {"public": [1 << 70]},
        {"seed": -1},
        {"seed": "3"},
        {"public_fraction": float("nan")},
        {"public_fraction": 2},
        {"fingerprint": "AB" * 32},
        {"fingerprint": "ab"},
        {"data_spec": 5},
        {"part": ""},
        {"data_spec": None},
        "missing",
    ],
)
def test_a_hostile_split_is_refused_in_one_line(tmp_path, change):
    if change == "missing":
        split = {k: v for k, v in SPLIT.items() if k != "public_fraction"}
    elif isinstance(change, dict):
        split = {**SPLIT, **change}
    else:
        split = change
    with pytest.raises(SleuthError, match="invalid owner key") as err:
        load_owner_key(_old_key_file(tmp_path / "bad.pt", split))
    assert "\n" not in str(err.value)


def test_writes_are_atomic_no_temp_files_left(tmp_path):
    save_encoder(_encoder(), tmp_path / "e.pt")
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == ["e.pt"]


def test_encoder_files_get_the_umask_permissions(tmp_path):
    """Both formats are written with the usual permissions under the umask (docs/formats.md),
    not the 0600 of a temporary file (safetensors replaces the file it writes)."""
    import os

    from sleuth.data import InputSpec
    from sleuth.fileio import umask
    from sleuth.models import Encoder, encoder_config, save_encoder

    encoder = Encoder(encoder_config("smallresnet", InputSpec(1, 16, (0.5,), (0.5,)), 8))
    for name in ("e.pt", "e.safetensors"):
        path = save_encoder(encoder, tmp_path / name)
        assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask(), name
