"""Reading and writing encoder files and owner keys, treating every file as hostile.

Formats are documented in docs/formats.md. Loading never unpickles anything but tensors,
containers and primitives (``torch.load(..., weights_only=True)``), always builds the module from
our own registry, and refuses rather than falls back.
"""

from __future__ import annotations

import json
import pickle
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from sleuth.data import InputSpec, OwnerSplit
from sleuth.errors import SleuthError
from sleuth.fileio import atomic_write
from sleuth.models.encoder import (
    Encoder,
    EncoderConfig,
    brief,
    check_rep_dim,
    encoder_config,
    skeleton,
)
from sleuth.models.heads import augmentation_predictor, projection_head
from sleuth.models.registry import get_architecture

ENCODER_FORMAT = "sleuth-encoder"
OWNER_KEY_FORMAT = "sleuth-owner-key"
FORMAT_VERSION = 1


def _unpickler_reason(exc: Exception) -> str:
    """The line of torch's weights-only error that says what was refused."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    found = [ln for ln in lines if "GLOBAL" in ln or "Unsupported" in ln or "unsupported" in ln]
    return (found or lines or [type(exc).__name__])[0]


def read_torch_file(path: str | Path) -> Any:
    """``torch.load`` restricted to tensors, containers and primitives; errors become one line."""
    path = Path(path)
    if not path.is_file():
        raise SleuthError(f"file not found: {path}")
    try:
        with warnings.catch_warnings():  # a refusal is one line of ours, not torch's warnings
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = _unpickler_reason(exc)
        if "GLOBAL" in reason:
            raise SleuthError(
                f"refused to load {path}: it needs unpickling beyond tensors, containers and "
                f"primitives, which an untrusted file must not get ({reason})"
            ) from None
        raise SleuthError(f"{path} is not a readable torch file ({reason})") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise SleuthError(f"{path} is not a readable torch file ({type(exc).__name__})") from None


def _save_torch(obj: Any, path: Path) -> Path:
    """torch.save through a file object, so the archive's folder is always "archive" (given a
    path, torch names it after the temporary file): the same model gives the same bytes."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            torch.save(obj, f)

    return atomic_write(path, write)


def _check_version(d: Any, fmt: str, path: Path) -> None:
    if not isinstance(d, Mapping):
        raise SleuthError(f"{path} is not a {fmt} file (its header is a {type(d).__name__})")
    if d.get("format") != fmt:
        raise SleuthError(f"{path} is not a {fmt} file (format={d.get('format')!r})")
    version = d.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise SleuthError(f"{path} has unsupported format_version {version!r}")


def _tensor_dict(obj: Any, path: Path, what: str) -> dict[str, torch.Tensor]:
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise SleuthError(f"{path}: {what} must map names to tensors")
    return dict(obj)


def _check_state(config: EncoderConfig, state: Mapping[str, torch.Tensor], path: Path) -> None:
    """The file's tensors against the module its header describes, built on the meta device:
    the same names, shapes and dtypes, or refused before a byte of the module is allocated (so
    the module is never larger than the tensors the file holds, themselves bounded by
    ``MAX_NUMBERS``), and weights are never cast silently."""
    try:
        expected = skeleton(config).backbone.state_dict()
    except SleuthError as exc:
        raise SleuthError(f"{path}: {exc}") from None
    what = f"a {config.arch} encoder"
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        listed = "; ".join(
            f"{label} {', '.join(keys[:3])}{'…' if len(keys) > 3 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected))
            if keys
        )
        raise SleuthError(f"{path}: weights do not fit {what} ({listed})")
    for name, want in expected.items():
        got = state[name]
        if got.shape != want.shape:
            raise SleuthError(
                f"{path}: {name} has shape {tuple(got.shape)} but {what} as its header "
                f"describes needs {tuple(want.shape)}"
            )
        if got.untyped_storage().nbytes() < got.numel() * got.element_size():
            raise SleuthError(  # e.g. an expanded (stride 0) tensor: small file, large module
                f"{path}: {name} claims more numbers than the file stores for it"
            )
        if got.dtype != want.dtype:
            raise SleuthError(
                f"{path}: {name} is {str(got.dtype).removeprefix('torch.')}, {what} holds "
                f"{str(want.dtype).removeprefix('torch.')} (convert the weights first: sleuth "
                "never casts them silently)"
            )


def _load_state(
    module: nn.Module, state: Mapping[str, torch.Tensor], path: Path, what: str
) -> None:
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise SleuthError(f"{path}: weights do not fit {what} ({detail})") from None


# --- encoders ---------------------------------------------------------------------------------


def encoder_header(encoder: Encoder) -> dict[str, Any]:
    """The metadata saved beside an encoder's weights."""
    return {"format": ENCODER_FORMAT, "format_version": FORMAT_VERSION, **encoder.config.to_dict()}


def save_encoder(encoder: Encoder, path: str | Path) -> Path:
    """Write ``encoder`` as ``.pt`` (torch zip) or ``.safetensors`` (by suffix), atomically."""
    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in encoder.backbone.state_dict().items()}
    header = encoder_header(encoder)
    if path.suffix == ".safetensors":
        meta = {"format": ENCODER_FORMAT, "sleuth": json.dumps(header)}
        return atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata=meta))
    return _save_torch({**header, "state_dict": state}, path)


def _read_safetensors(path: Path) -> tuple[dict[str, Any] | None, dict[str, torch.Tensor]]:
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError) as exc:
        raise SleuthError(f"{path} is not a readable safetensors file ({exc})") from None
    if "sleuth" not in meta:
        return None, state
    try:
        header = json.loads(meta["sleuth"])
    except (ValueError, RecursionError) as exc:  # not JSON, a 5,000-digit number, 10,000 deep
        raise SleuthError(
            f"{path}: its 'sleuth' metadata is not valid JSON ({type(exc).__name__})"
        ) from None
    if not isinstance(header, dict):
        raise SleuthError(
            f"{path}: its 'sleuth' metadata is a JSON {type(header).__name__}, not an object"
        )
    return header, state


def _bare_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Accept a bare trunk state dict too: strip DDP's ``module.``, drop a classifier ``fc``."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if not any(k.startswith(("trunk.", "proj.")) for k in state):
        state = {f"trunk.{k}": v for k, v in state.items() if not k.startswith("fc.")}
    return state


def _bare_config(
    state: Mapping[str, torch.Tensor], arch: str, input_size: int, path: Path
) -> EncoderConfig:
    first_conv = next((v for k, v in state.items() if k.endswith("conv1.weight")), None)
    if first_conv is None or first_conv.dim() != 4:
        raise SleuthError(f"{path}: cannot find the first convolution of a {arch} in the weights")
    channels = int(first_conv.shape[1])
    input_spec = InputSpec(channels, input_size, (0.5,) * channels, (0.5,) * channels)
    try:
        kwargs = get_architecture(arch).kwargs_from_state(state)
    except KeyError as exc:
        raise SleuthError(f"{path}: weights are not a {arch} (missing {exc})") from None
    rep_dim = int(state["proj.weight"].shape[0]) if "proj.weight" in state else None
    return encoder_config(arch, input_spec, rep_dim, **kwargs)


def load_encoder(path: str | Path, *, arch: str | None = None, input_size: int = 32) -> Encoder:
    """Load an encoder file (.pt or .safetensors) on CPU, in eval mode.

    A file without sleuth metadata (a bare state dict) needs ``arch``; its input is taken to be
    ``input_size``-pixel images normalised with mean 0.5 and std 0.5 per channel.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise SleuthError(f"file not found: {path}")
        header, state = _read_safetensors(path)
    else:
        obj = read_torch_file(path)
        if not isinstance(obj, Mapping):
            raise SleuthError(f"{path} holds a {type(obj).__name__}, not an encoder")
        header = {k: v for k, v in obj.items() if k != "state_dict"} if "format" in obj else None
        if header is not None:
            _check_version(header, ENCODER_FORMAT, path)
        state = _tensor_dict(obj.get("state_dict") if header else obj, path, "state_dict")
    if header is not None:
        _check_version(header, ENCODER_FORMAT, path)
        try:
            config = EncoderConfig.from_dict(header)
        except SleuthError as exc:
            raise SleuthError(f"{path}: invalid encoder metadata: {exc}") from None
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise SleuthError(
                f"{path}: invalid encoder metadata ({type(exc).__name__}: {brief(str(exc), 80)})"
            ) from None
    elif arch is None:
        raise SleuthError(f"{path} is a bare state dict: say which architecture with --arch")
    else:
        state = _bare_state(state)
        config = _bare_config(state, arch, input_size, path)
    _check_state(config, state, path)
    encoder = Encoder(config)
    _load_state(encoder.backbone, state, path, f"a {config.arch} encoder")
    return encoder.eval()


# --- owner keys -------------------------------------------------------------------------------


@dataclass
class OwnerKey:
    """What only the owner holds: heads, the private augmentation, the data split, the recipe."""

    rep_dim: int
    projection: dict[str, Any]  # {"hidden_dim", "out_dim", "state_dict"}
    predictor: dict[str, Any] | None  # {"hidden_dim", "n_classes", "state_dict"}; None: no mark
    # {"kind": "rotation", "intervals": [[lo, hi], ...] or [[lo, hi, class], ...]}
    watermark: dict[str, Any] | None
    split: OwnerSplit
    seed: int
    config: dict[str, Any] = field(default_factory=dict)

    def projection_head(self) -> nn.Sequential:
        p = self.projection
        dims = (self.rep_dim, p["hidden_dim"], p["out_dim"])
        return _head(projection_head, dims, p["state_dict"], "the projection head")

    def augmentation_predictor(self) -> nn.Sequential:
        if self.predictor is None:
            raise SleuthError("this owner key has no watermark (trained with --no-watermark)")
        p = self.predictor
        dims = (self.rep_dim, p["hidden_dim"], p["n_classes"])
        return _head(augmentation_predictor, dims, p["state_dict"], "the augmentation predictor")


def _head(
    build: Callable[..., nn.Sequential], dims: tuple[Any, ...], state: Any, what: str
) -> nn.Sequential:
    """A head of an owner key: integer sizes, and weights that fit the module built on the meta
    device, before it is allocated (a key's sizes never decide an allocation on their own)."""
    sizes = tuple(check_rep_dim(d, f"{what}'s size") for d in dims)
    with torch.device("meta"):
        expected = build(*sizes).state_dict()
    fits = isinstance(state, Mapping) and set(state) == set(expected)
    fits = fits and all(
        isinstance(state[k], torch.Tensor)
        and state[k].shape == v.shape
        and state[k].dtype == v.dtype
        for k, v in expected.items()
    )
    if not fits:
        raise SleuthError(f"the weights of {what} do not fit its sizes {sizes}")
    head = build(*sizes)
    head.load_state_dict(state)
    return head.eval()


def save_owner_key(key: OwnerKey, path: str | Path) -> Path:
    """Write the owner key as a weights-only-loadable torch file, atomically."""
    obj = {
        "format": OWNER_KEY_FORMAT,
        "format_version": FORMAT_VERSION,
        "rep_dim": key.rep_dim,
        "projection": key.projection,
        "predictor": key.predictor,
        "watermark": key.watermark,
        "split": key.split.to_dict(),
        "seed": key.seed,
        "config": key.config,
    }
    return _save_torch(obj, Path(path))


def load_owner_key(path: str | Path) -> OwnerKey:
    """Read and check an owner key; its heads are rebuilt (and checked) on first use."""
    path = Path(path)
    obj = read_torch_file(path)
    if not isinstance(obj, Mapping):
        raise SleuthError(f"{path} holds a {type(obj).__name__}, not an owner key")
    _check_version(obj, OWNER_KEY_FORMAT, path)
    try:
        key = OwnerKey(
            rep_dim=int(obj["rep_dim"]),
            projection=dict(obj["projection"]),
            predictor=None if obj["predictor"] is None else dict(obj["predictor"]),
            watermark=obj["watermark"],
            split=OwnerSplit.from_dict(obj["split"]),
            seed=int(obj["seed"]),
            config=dict(obj.get("config", {})),
        )
        key.projection_head()
        if key.predictor is not None:
            key.augmentation_predictor()
    except SleuthError as exc:
        raise SleuthError(f"{path}: invalid owner key: {exc}") from None
    except (KeyError, TypeError, ValueError, RuntimeError, OverflowError) as exc:
        raise SleuthError(
            f"{path}: invalid owner key ({type(exc).__name__}: {brief(str(exc), 120)})"
        ) from None
    return key
