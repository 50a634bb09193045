"""Training: the predictor is optimised, seeds reproduce, and resume continues exactly."""

import os
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch

from sleuth.data import input_spec_for, load_images
from sleuth.data.watermark import RotationWatermark
from sleuth.embed import EmbedConfig, from_preset, references, run_embed
from sleuth.embed.distributed import setup
from sleuth.embed.trainer import SimCLRModel, train
from sleuth.errors import SleuthError
from sleuth.models import Encoder, encoder_config, load_encoder, load_owner_key


def _cfg(spec: str, **kw) -> EmbedConfig:
    base = dict(data=spec, epochs=1, batch_size=16, lr=3e-3, wm_fraction=0.5, rep_dim=16)
    return EmbedConfig(**{**base, **kw})


def _train(spec, **kw):
    cfg = _cfg(spec, **kw)
    data = load_images(spec, "train")
    return cfg, train(cfg, data, input_spec_for(data), setup("cpu"))


def test_predictor_and_head_are_optimised(tiny_npz):
    cfg, out = _train(tiny_npz)
    data = load_images(tiny_npz, "train")
    torch.manual_seed(cfg.seed)
    init = SimCLRModel(Encoder(encoder_config(cfg.arch, input_spec_for(data), 16)), cfg, 2)
    for part in ("predictor", "head", "encoder"):
        before = getattr(init, part).state_dict()
        after = getattr(out.model, part).state_dict()
        changed = [
            k
            for k in before
            if before[k].is_floating_point() and not torch.equal(before[k], after[k])
        ]
        assert changed, f"{part} parameters never changed: not in the optimiser?"
    assert set(out.state.history[0]) >= {"loss", "contrastive", "wm_loss", "wm_acc"}


def test_same_seed_same_encoder_other_seed_differs(tiny_npz):
    """Given its intervals (the owner's secret, recorded in the key), a seed reproduces a run."""
    _, a = _train(tiny_npz, wm_intervals="half")
    _, b = _train(tiny_npz, wm_intervals="half")
    _, c = _train(tiny_npz, seed=1, wm_intervals="half")
    sa, sb, sc = (m.model.encoder.state_dict() for m in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_resume_after_interruption_gives_the_same_encoder(tiny_npz, tmp_path):
    """A killed run resumed from its checkpoint keeps the secret intervals it drew and ends
    bit-identical to an uninterrupted run with those intervals; the public manifest names only
    "random", the owner key the intervals."""
    cfg = _cfg(tiny_npz, epochs=3)
    assert cfg.wm_intervals == "random"  # the default: a secret per owner

    def kill_in_third_epoch(ev):
        if ev.epoch == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_embed(cfg, tmp_path / "killed", device="cpu", progress=kill_in_third_epoch)
    assert (tmp_path / "killed" / "checkpoint.pt").exists()
    assert not (tmp_path / "killed" / "encoder.pt").exists()
    with pytest.raises(SleuthError, match="other training settings"):
        run_embed(replace(cfg, lr=1e-2), tmp_path / "killed", device="cpu", resume=True)
    result = run_embed(cfg, tmp_path / "killed", device="cpu", resume=True)
    assert result.resumed_from_epoch == 2
    assert not (tmp_path / "killed" / "checkpoint.pt").exists()
    key = load_owner_key(tmp_path / "killed" / "owner-key.pt")
    drawn = RotationWatermark.from_list(key.watermark["intervals"])
    manifest = (tmp_path / "killed" / "manifest.json").read_text()
    assert '"wm_intervals": "random"' in manifest and drawn.to_spec() not in manifest
    run_embed(replace(cfg, wm_intervals=drawn.to_spec()), tmp_path / "straight", device="cpu")
    a = load_encoder(tmp_path / "straight" / "encoder.pt").state_dict()
    b = load_encoder(tmp_path / "killed" / "encoder.pt").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_no_watermark_reference_has_no_predictor(tiny_npz, tmp_path):
    result = run_embed(_cfg(tiny_npz, watermark=False), tmp_path / "ref", device="cpu")
    key = load_owner_key(tmp_path / "ref" / "owner-key.pt")
    assert key.predictor is None and key.watermark is None
    assert "watermark_accuracy" not in result.metrics
    with pytest.raises(SleuthError, match="no watermark"):
        key.augmentation_predictor()


def test_owner_key_records_the_split_and_the_data(tiny_npz, tmp_path):
    run_embed(_cfg(tiny_npz, wm_intervals="flip"), tmp_path / "v", device="cpu")
    key = load_owner_key(tmp_path / "v" / "owner-key.pt")
    private, public = set(key.split.private), set(key.split.public)
    assert not private & public
    assert len(private) + len(public) == len(load_images(tiny_npz, "train"))
    assert key.split.data_spec == tiny_npz and len(key.split.fingerprint) == 64
    assert key.watermark == {"kind": "rotation", "intervals": [[-60.0, 60.0], [120.0, 240.0]]}


def test_presets_and_invalid_settings():
    assert from_preset("paper").arch == "resnet18"
    assert from_preset("demo", epochs=2).epochs == 2
    with pytest.raises(SleuthError, match="preset"):
        from_preset("huge")
    with pytest.raises(SleuthError, match="batch_size"):
        EmbedConfig(batch_size=1)


def test_too_little_data_for_one_batch_is_a_clear_error(tiny_npz, tmp_path):
    with pytest.raises(SleuthError, match="fewer than one batch"):
        run_embed(_cfg(tiny_npz, batch_size=512), tmp_path / "x", device="cpu")


def _ddp_rank(rank, world, port, batch, out):
    """One gloo rank of test_ddp_contrastive_loss_equals_one_process: its interleaved slice of
    the batch through a DDP-wrapped linear map, the trainer's loss and objective, backward."""
    import os

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from sleuth.embed.distributed import DistInfo
    from sleuth.embed.trainer import contrastive_loss

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    net = DistributedDataParallel(torch.nn.Linear(6, 4))
    x1, x2 = batch[0][rank::world], batch[1][rank::world]
    z = net(torch.cat([x1, x2]))
    loss, objective = contrastive_loss(*z.chunk(2), 0.5, DistInfo(rank, world, torch.device("cpu")))
    objective.backward()
    if rank == 0:
        torch.save({"loss": loss.detach(), "grad": net.module.weight.grad.clone()}, out)
    dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_contrastive_loss_equals_one_process(tmp_path):
    """H: under DDP the NT-Xent negatives are the whole global batch. With 2 gloo ranks the
    first step's loss and (DDP-averaged) gradient equal one process's on the same 16 pairs, to
    float32 rounding (1e-5 relative); the per-rank loss the old code computed does not."""
    import torch.multiprocessing as mp

    from sleuth.embed.distributed import DistInfo
    from sleuth.embed.trainer import contrastive_loss
    from sleuth.models.losses import nt_xent

    g = torch.Generator().manual_seed(1)
    batch = torch.randn(2, 16, 6, generator=g)
    out = tmp_path / "rank0.pt"
    mp.spawn(_ddp_rank, args=(2, 29000 + os.getpid() % 1000, batch, out), nprocs=2)
    torch.manual_seed(0)
    single = torch.nn.Linear(6, 4)
    z = single(torch.cat([batch[0], batch[1]]))
    loss, objective = contrastive_loss(*z.chunk(2), 0.5, DistInfo(0, 1, torch.device("cpu")))
    objective.backward()
    ranked = torch.load(out, weights_only=True)
    assert torch.allclose(ranked["loss"], loss, rtol=1e-5)
    assert torch.allclose(ranked["grad"], single.weight.grad, rtol=1e-5, atol=1e-7)
    # a rank's own slice alone (no gathered negatives) is a different loss
    z1, z2 = z.detach().chunk(2)
    assert not torch.isclose(nt_xent(z1[::2], z2[::2], 0.5), loss)


@pytest.mark.parametrize(
    ("rows", "owners_draw"),
    [
        ([[10.0, 190.0], [190.0, 370.0]], "random-half"),
        ([[0.0, 100.0, 0], [100.0, 360.0, 1]], "random"),
    ],
)
def test_other_owners_draw_keys_of_the_victims_kind(tmp_path, monkeypatch, rows, owners_draw):
    """A victim whose ``random`` key was drawn as two half-turns (before keys of arcs) gets other
    owners drawn as half-turns too: measured, those read widely on a half-turn victim's
    predictor where owners with arcs read like unwatermarked encoders, so they are its null."""
    (tmp_path / "owner-key.pt").touch()
    key = SimpleNamespace(
        config=EmbedConfig().to_dict(), watermark={"kind": "rotation", "intervals": rows}
    )
    monkeypatch.setattr(references, "load_owner_key", lambda _path: key)
    assert references.victim_recipe(tmp_path).wm_intervals == owners_draw
