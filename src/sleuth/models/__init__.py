"""Encoders and heads: the architecture registry, and safe reading and writing of artifacts."""

from sleuth.models.artifacts import (
    OwnerKey,
    load_encoder,
    load_owner_key,
    read_torch_file,
    save_encoder,
    save_owner_key,
)
from sleuth.models.encoder import Encoder, EncoderConfig, encoder_config
from sleuth.models.heads import augmentation_predictor, projection_head
from sleuth.models.registry import ARCHITECTURES, DEFAULT_ARCH, get_architecture

__all__ = [
    "ARCHITECTURES",
    "DEFAULT_ARCH",
    "Encoder",
    "EncoderConfig",
    "OwnerKey",
    "augmentation_predictor",
    "encoder_config",
    "get_architecture",
    "load_encoder",
    "load_owner_key",
    "projection_head",
    "read_torch_file",
    "save_encoder",
    "save_owner_key",
]
