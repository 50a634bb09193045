"""Training a victim encoder: SimCLR with the rotation watermark, checkpoints and DDP."""

from sleuth.embed.config import PRESETS, EmbedConfig, from_preset
from sleuth.embed.run import ENCODER_NAME, OWNER_KEY_NAME, EmbedResult, run_embed

__all__ = [
    "ENCODER_NAME",
    "OWNER_KEY_NAME",
    "PRESETS",
    "EmbedConfig",
    "EmbedResult",
    "from_preset",
    "run_embed",
]
