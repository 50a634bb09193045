"""The architecture registry: sizes, representation dimensions, stems."""

import pytest
import torch

from sleuth.data import InputSpec
from sleuth.errors import SleuthError
from sleuth.models import ARCHITECTURES, Encoder, encoder_config, get_architecture

GREY28 = InputSpec(1, 28, (0.5,), (0.25,))
RGB32 = InputSpec(3, 32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def test_default_is_small_and_fast():
    enc = Encoder(encoder_config("smallresnet", GREY28))
    n = sum(p.numel() for p in enc.parameters())
    assert 100_000 < n < 1_000_000
    assert enc(torch.rand(3, 1, 28, 28)).shape == (3, 128)


@pytest.mark.parametrize("arch,native", [("resnet18", 512), ("resnet34", 512), ("resnet50", 2048)])
def test_resnets_have_native_width_and_cifar_stem(arch, native):
    cfg = encoder_config(arch, RGB32)
    assert cfg.rep_dim == native and cfg.arch_kwargs == {"cifar_stem": True}
    enc = Encoder(cfg)
    conv1 = enc.backbone.trunk.conv1
    assert conv1.kernel_size == (3, 3) and conv1.stride == (1, 1)
    assert isinstance(enc.backbone.trunk.maxpool, torch.nn.Identity)
    assert enc(torch.rand(2, 3, 32, 32)).shape == (2, native)


def test_large_inputs_keep_the_imagenet_stem_and_grey_input_is_supported():
    enc = Encoder(encoder_config("resnet18", InputSpec(1, 96, (0.5,), (0.5,))))
    assert enc.backbone.trunk.conv1.kernel_size == (7, 7)
    assert enc.backbone.trunk.conv1.in_channels == 1


def test_configurable_representation_size():
    enc = Encoder(encoder_config("smallresnet", GREY28, rep_dim=32))
    assert enc(torch.rand(2, 1, 28, 28)).shape == (2, 32)
    assert isinstance(enc.backbone.proj, torch.nn.Linear)


def test_represent_adapts_any_input_and_normalises():
    enc = Encoder(encoder_config("smallresnet", GREY28)).eval()
    raw = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    reps = enc.represent(raw, batch_size=3)
    assert reps.shape == (4, 128) and reps.dtype == torch.float32
    assert enc.training is False


def test_unknown_architecture_lists_known_ones():
    with pytest.raises(SleuthError, match="smallresnet"):
        get_architecture("vgg11")
    assert set(ARCHITECTURES) >= {"smallresnet", "resnet18", "resnet34", "resnet50"}


@pytest.mark.parametrize("widths", [[0, 8, 8], [-4, 8, 8], [], [8, 8], [8, 8, 10**6], [8, 8.5, 8]])
def test_bad_widths_are_refused_by_name(widths):
    """Zero, negative, missing, extra-large or fractional widths (from --arch-option or a
    hostile file's header) are one SleuthError naming them, never a torch error."""
    from sleuth.data import InputSpec
    from sleuth.errors import SleuthError
    from sleuth.models import Encoder, encoder_config

    spec = InputSpec(1, 16, (0.5,), (0.5,))
    with pytest.raises(SleuthError, match="widths"):
        Encoder(encoder_config("smallresnet", spec, 8, widths=widths))
