"""Encoder files and owner keys: round trips, bare state dicts, and refusal of hostile files."""

import os
import pickle
from pathlib import Path

import pytest
import torch

from sleuth.data import InputSpec
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


def test_owner_key_round_trip(tmp_path):
    head, pred = projection_head(8, 8, 4), augmentation_predictor(8, 6, 2)
    key = OwnerKey(
        rep_dim=8,
        projection={"hidden_dim": 8, "out_dim": 4, "state_dict": head.state_dict()},
        predictor={"hidden_dim": 6, "n_classes": 2, "state_dict": pred.state_dict()},
        watermark={"kind": "rotation", "intervals": [[0.0, 180.0], [180.0, 360.0]]},
        split={"data_spec": "demo", "fingerprint": "ab" * 32, "private": [0, 2], "public": [1]},
        seed=7,
        config={"epochs": 1},
    )
    back = load_owner_key(save_owner_key(key, tmp_path / "owner-key.pt"))
    assert back.split == key.split and back.watermark == key.watermark and back.seed == 7
    h = torch.randn(3, 8)
    with torch.no_grad():
        assert torch.equal(back.augmentation_predictor()(h), pred.eval()(h))
        assert torch.equal(back.projection_head()(h), head.eval()(h))


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
