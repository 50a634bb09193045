"""sleuth verify end to end on tiny encoders: known stolen and known independent suspects,
white-box and black-box, several victims, and refusals of bad input."""

import json

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sleuth.cli import app
from sleuth.errors import SleuthError
from sleuth.models import Encoder, load_encoder, save_encoder
from sleuth.verify import ChallengeSettings, build_challenge, export_challenge, run_verify
from sleuth.verify.result import TestResult
from sleuth.verify.verdict import Decision, adjust, verdict

SETTINGS = ChallengeSettings(samples=60, noise_points=20, noise_draws=5)


def _refs(zoo):
    return sorted(str(p) for p in zoo.glob("ref*"))


def _perturbed_copy(zoo, tmp_path, scale: float):
    enc = load_encoder(zoo / "victim" / "encoder.pt")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale * p.abs().mean())
    return str(save_encoder(enc, tmp_path / "copy.pt"))


def test_victim_and_a_slightly_perturbed_copy_are_stolen(zoo, tmp_path):
    for suspect in (str(zoo / "victim"), _perturbed_copy(zoo, tmp_path, 0.01)):
        res = run_verify(
            [str(zoo / "victim")], suspect=suspect, references=_refs(zoo), settings=SETTINGS
        )
        assert res.verdict == "stolen", res.victims[0].reason
        families = {d.result.family for d in res.victims[0].decisions if d.rejected}
        assert len(families) >= 2


def test_a_fresh_random_network_is_never_accused(zoo, tmp_path):
    victim = load_encoder(zoo / "victim" / "encoder.pt")
    torch.manual_seed(123)
    random_net = save_encoder(Encoder(victim.config), tmp_path / "random.pt")
    res = run_verify(
        [str(zoo / "victim")], suspect=str(random_net), references=_refs(zoo), settings=SETTINGS
    )
    assert res.verdict != "stolen"
    wm = next(d for d in res.victims[0].decisions if d.result.name == "watermark-binomial")
    assert not wm.rejected


def test_each_reference_as_suspect_is_not_stolen(zoo):
    refs = _refs(zoo)
    for j, ref in enumerate(refs):
        others = refs[:j] + refs[j + 1 :] + [str(zoo / "victim2")]
        res = run_verify([str(zoo / "victim")], suspect=ref, references=others, settings=SETTINGS)
        assert res.verdict != "stolen"


def test_black_box_answers_give_the_white_box_result(zoo, tmp_path):
    from sleuth.models import load_owner_key

    victim = str(zoo / "victim")
    ch = build_challenge(load_owner_key(zoo / "victim" / "owner-key.pt"), SETTINGS)
    path, key_path = export_challenge(ch, tmp_path / "challenge.h5")
    with h5py.File(path) as f:
        x = torch.from_numpy(f["x"][()])
        assert set(f.keys()) == {"x"}  # roles stay with the investigator
    assert "roles" in json.loads(key_path.read_text())
    answers = load_encoder(zoo / "victim" / "encoder.pt").represent(x).numpy()
    with h5py.File(tmp_path / "answers.h5", "w") as f:
        f["answers"] = answers
    black = run_verify(
        [victim],
        suspect_reps=str(tmp_path / "answers.h5"),
        challenge_key=str(key_path),
        references=_refs(zoo),
        settings=SETTINGS,
    )
    white = run_verify([victim], suspect=victim, references=_refs(zoo), settings=SETTINGS)
    assert black.verdict == white.verdict == "stolen"
    pb = [d.p_decision for d in black.victims[0].decisions]
    pw = [d.p_decision for d in white.victims[0].decisions]
    assert np.allclose(pb, pw, rtol=1e-4, atol=1e-12)
    with h5py.File(tmp_path / "short.h5", "w") as f:
        f["answers"] = answers[:-1]
    with pytest.raises(SleuthError, match="expected answers"):
        run_verify([victim], suspect_reps=str(tmp_path / "short.h5"), challenge_key=str(key_path))
    with pytest.raises(SleuthError, match="another victim"):
        run_verify(
            [str(zoo / "victim2")],
            suspect_reps=str(tmp_path / "answers.h5"),
            challenge_key=str(key_path),
        )


def test_many_victims_one_correction_and_a_verdict_each(zoo):
    victims = [str(zoo / "victim"), str(zoo / "victim2")]
    res = run_verify(victims, suspect=victims[0], references=_refs(zoo), settings=SETTINGS)
    assert [v.verdict for v in res.victims][0] == "stolen"
    assert res.victims[1].verdict != "stolen"
    counted = [d for v in res.victims for d in v.decisions if d.counted]
    m = len(counted)
    smallest = min(counted, key=lambda d: d.p_decision)
    assert smallest.p_adjusted == pytest.approx(min(1.0, smallest.p_decision * m))


def _decision(family: str, p: float, counted: bool = True) -> Decision:
    r = TestResult(
        name=family,
        family=family,
        statistic=1.0,
        p_value=p,
        effect=0.1,
        effect_name="",
        n=100,
        alternative="",
        compared="",
        score=0.0,
    )
    return Decision(r, counted=counted, p_decision=p)


def test_the_rule_needs_two_families_and_holm_spans_everything():
    one = [_decision("watermark", 1e-9), _decision("dataset-inference", 0.5)]
    adjust(one, 0.01)
    assert verdict(one)[0] == "inconclusive"
    two = [_decision("watermark", 1e-9), _decision("distance", 1e-9)]
    adjust(two, 0.01)
    assert verdict(two)[0] == "stolen"
    none = [_decision("watermark", 0.4), _decision("distance", 0.6)]
    adjust(none, 0.01)
    assert verdict(none)[0] == "not_stolen"
    # 0.004 twice passes alone (< 0.01) but not after Holm over 4 tests (0.004 * 4 > 0.01);
    # evidence at the 0.05 family-wise level still blocks clearing the suspect
    many = [
        _decision("watermark", 0.004),
        _decision("distance", 0.004),
        _decision("noise", 0.5),
        _decision("alignment", 0.5),
    ]
    adjust(many, 0.01)
    assert not any(d.rejected for d in many)
    assert verdict(many)[0] == "inconclusive"
    invalid_only = [_decision("watermark", 1e-9, counted=False)]
    adjust(invalid_only, 0.01)
    assert verdict(invalid_only)[0] == "inconclusive"


def test_a_suspect_of_another_size_runs_the_size_free_tests_only(zoo, tmp_path):
    victim = load_encoder(zoo / "victim" / "encoder.pt")
    from sleuth.models import encoder_config

    torch.manual_seed(5)
    other = Encoder(encoder_config("smallresnet", victim.config.input_spec, rep_dim=8))
    path = save_encoder(other, tmp_path / "small.pt")
    res = run_verify(
        [str(zoo / "victim")], suspect=str(path), references=_refs(zoo), settings=SETTINGS
    )
    by_name = {d.result.name: d for d in res.victims[0].decisions}
    for name in ("watermark-binomial", "di-head-loss", "distance-l2"):
        assert not by_name[name].counted and "size" in by_name[name].result.note
    for name in ("di-gmm", "procrustes", "noise-sensitivity"):
        assert by_name[name].result.valid
    assert res.verdict != "stolen"


def test_bad_inputs(zoo, tmp_path):
    with pytest.raises(SleuthError, match="encoder.pt and owner-key.pt"):
        run_verify([str(tmp_path)], suspect=str(zoo / "victim"), settings=SETTINGS)
    with pytest.raises(SleuthError, match="either"):
        run_verify([str(zoo / "victim")], settings=SETTINGS)
    with pytest.raises(SleuthError, match="unknown test"):
        run_verify(
            [str(zoo / "victim")], suspect=str(zoo / "victim"), tests=["magic"], settings=SETTINGS
        )


def test_cli_verify_json_and_challenge(zoo, tmp_path):
    runner = CliRunner()
    args = [
        "verify",
        str(zoo / "victim"),
        "--victim",
        str(zoo / "victim"),
        "--samples",
        "40",
        "--quiet",
        "--json",
        str(tmp_path / "r.json"),
    ]
    for r in _refs(zoo):
        args += ["--reference", r]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["verdict"] == "stolen" and "verdict: stolen" in res.stdout
    res = runner.invoke(
        app,
        [
            "verify",
            "challenge",
            "--victim",
            str(zoo / "victim"),
            "--out",
            str(tmp_path / "c.h5"),
            "--samples",
            "20",
        ],
    )
    assert res.exit_code == 0 and (tmp_path / "c.key.json").exists()
    bad = runner.invoke(app, ["verify", str(tmp_path / "nope.pt"), "--victim", str(zoo / "victim")])
    assert bad.exit_code == 2 and "not found" in bad.output
