"""Zoo members by other trainers (lightly's methods, supervised): trained on the victim recipe's
data and architecture, recorded, reused, refused when unknown or when lightly is missing."""

import json
import math
import sys
from dataclasses import replace

import pytest
import torch

from sleuth.embed import other_trainers
from sleuth.embed.references import build_zoo, victim_recipe
from sleuth.errors import SleuthError
from sleuth.models import load_encoder


def test_a_supervised_member_is_trained_recorded_and_reused(zoo, tmp_path):
    """The member is an encoder of the victim's architecture and representation size (its input
    normalisation is its own split's, as the recipe's references' are), trained (its weights are
    not its initial ones), recorded in zoo.json with its trainer and in its manifest with the
    recipe; a second build reuses it."""
    out = tmp_path / "zoo"
    one = dict(n=1, owners=0, epochs=1, device="cpu", trainers=["supervised"], per_trainer=1)
    members = build_zoo(zoo / "victim", out, **one)
    assert [m.trainer for m in members] == ["sleuth", "supervised"]
    member = members[1]
    assert member.name == f"supervised-{member.seed}" and not member.watermarked
    encoder = load_encoder(member.path / "encoder.pt")
    victim = load_encoder(zoo / "victim" / "encoder.pt").config
    assert (encoder.config.arch, encoder.rep_dim) == (victim.arch, victim.rep_dim)
    torch.manual_seed(member.seed)
    fresh = type(encoder)(encoder.config)
    assert any(
        not torch.equal(a, b)
        for a, b in zip(encoder.state_dict().values(), fresh.state_dict().values(), strict=True)
    )
    record = json.loads((out / "zoo.json").read_text())
    assert record["members"][1]["trainer"] == "supervised"
    manifest = json.loads((member.path / "manifest.json").read_text())
    assert manifest["details"]["trainer"] == "supervised" and manifest["metrics"]["steps"] > 0
    again = build_zoo(zoo / "victim", out, **one)
    assert all(m.reused for m in again)


def test_unknown_trainers_and_a_missing_lightly_are_refused_before_training(
    zoo, tmp_path, monkeypatch
):
    """Refusals come before any member trains: nothing is written."""
    with pytest.raises(SleuthError, match="unknown trainer"):
        build_zoo(zoo / "victim", tmp_path / "z", n=1, trainers=["dino"])
    monkeypatch.setitem(sys.modules, "lightly", None)  # as if it were not installed
    with pytest.raises(SleuthError, match="peers"):
        build_zoo(zoo / "victim", tmp_path / "z", n=1, trainers=["lightly-byol"])
    assert not (tmp_path / "z").exists()


@pytest.mark.parametrize("trainer", ["lightly-simclr", "lightly-byol", "lightly-moco"])
def test_lightly_members_train(zoo, tmp_path, trainer):
    """Each lightly method trains an encoder of the victim's architecture (its loss is finite)."""
    pytest.importorskip("lightly")
    recipe = replace(victim_recipe(zoo / "victim"), epochs=1)
    path = other_trainers.train_other(trainer, recipe, 11, tmp_path / trainer, device="cpu")
    manifest = json.loads((path.parent / "manifest.json").read_text())
    assert manifest["details"]["lightly"] and math.isfinite(manifest["metrics"]["final_loss"])
    assert load_encoder(path).rep_dim == load_encoder(zoo / "victim" / "encoder.pt").rep_dim
