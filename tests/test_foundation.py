"""sleuth bench --suite foundation: a victim per interval split, its recipe unwatermarked and
references, each scored on every victim's predictor; its cells resume like the papers' suites'."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from sleuth.bench.foundation import FOUNDATION_SUITES, FoundationSuite, run_foundation
from sleuth.cli import app
from sleuth.embed import EmbedConfig

TINY = FoundationSuite(
    name="foundation-tiny",
    description="two tiny victims, their recipe unwatermarked and two references",
    recipe=EmbedConfig(epochs=2, batch_size=32, lr=3e-3, rep_dim=16, wm_fraction=0.5),
    references=2,
)


@pytest.fixture(scope="module")
def ran(tmp_path_factory, make_images):
    root = tmp_path_factory.mktemp("foundation")
    x, y = make_images(n=200, seed=5)
    np.savez(root / "data.npz", x=x, y=y)
    data = f"npz:{root / 'data.npz'}"
    return data, root / "out", run_foundation("", root / "out", data=data, device="cpu", suite=TINY)


def test_every_encoder_is_scored_on_every_victims_predictor(ran):
    """Each victim scores its own watermark on its predictor and its own encoder there; every
    other encoder is scored too, and the unwatermarked ones report no own watermark."""
    _, out, result = ran
    runs = result.results["runs"]
    assert list(runs) == ["victim-half", "victim-flip", "plain-seed0", "ref-seed1", "ref-seed2"]
    for victim in ("victim-half", "victim-flip"):
        scores = runs[victim]["scored_on_predictor"]
        assert set(scores) == set(runs)
        assert all(0.0 <= s <= 1.0 for s in scores.values())
    assert runs["plain-seed0"]["own_watermark_accuracy"] is None
    assert runs["victim-half"]["own_watermark_accuracy"] is not None
    assert "scored_on_predictor" not in runs["ref-seed1"]
    saved = json.loads((out / "results.json").read_text())
    assert saved["format"] == "sleuth-foundation" and saved["runs"] == runs
    assert saved["recipe"]["epochs"] == 2 and saved["machine"]["cores"] >= 1


def test_a_second_run_reuses_every_encoder(ran):
    """Resume: nothing trains again, and the scores are the same."""
    data, out, first = ran
    again = run_foundation("", out, data=data, device="cpu", suite=TINY)
    assert again.ran == [] and len(again.reused) == 5
    assert again.results["runs"] == first.results["runs"]


def test_cli_refuses_what_the_foundation_suite_has_not(tmp_path):
    """--only and --list belong to the papers' suites; another bench's folder is refused; all
    in one line, exit 2."""
    assert "foundation" in FOUNDATION_SUITES
    runner = CliRunner()
    res = runner.invoke(app, ["bench", "--suite", "foundation", "--list"])
    assert res.exit_code == 2 and "--only and --list" in res.output
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    res = runner.invoke(app, ["bench", "--suite", "foundation", "--out", str(busy)])
    assert res.exit_code == 2 and "holds no bench" in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_cli_prints_every_encoder_on_every_predictor(ran, monkeypatch):
    """The CLI's table: a row per encoder and a column per victim's predictor; --json is the
    results file's content."""
    from rich.console import Console

    from sleuth import cli

    data, out, result = ran
    monkeypatch.setitem(FOUNDATION_SUITES, TINY.name, TINY)
    wide = Console(record=True, width=200, force_terminal=False)
    monkeypatch.setattr(cli, "out", wide)
    runner = CliRunner()
    args = ["bench", "--suite", TINY.name, "--data", data, "--out", str(out), "--device", "cpu"]
    res = runner.invoke(app, [*args, "--quiet"])
    shown = wide.export_text()
    assert res.exit_code == 0, res.output
    assert "on victim-flip" in shown and "ref-seed2" in shown
    assert f"{result.results['runs']['plain-seed0']['probe_accuracy']:.4f}" in shown
    monkeypatch.undo()
    monkeypatch.setitem(FOUNDATION_SUITES, TINY.name, TINY)
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["runs"] == result.results["runs"]


def test_under_torchrun_it_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    """One process per bench, as for the papers' suites: every rank would train every cell."""
    from sleuth.errors import SleuthError

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SleuthError, match="one process"):
        run_foundation("", tmp_path / "out", device="cpu", suite=TINY)
    assert not (tmp_path / "out").exists()
