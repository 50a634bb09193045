"""sleuth demo end to end on tiny synthetic data: every stage runs, the copy is found stolen
and the independent encoder is not accused, the reports check, and --resume reuses every
model."""

import numpy as np
import pytest
from typer.testing import CliRunner

from sleuth.cli import app
from sleuth.demo import DemoPlan, run_demo
from sleuth.embed import EmbedConfig
from sleuth.errors import SleuthError
from sleuth.reports import read_statement
from sleuth.steal import StealConfig
from sleuth.verify import ChallengeSettings


@pytest.fixture(scope="module")
def plan(tmp_path_factory, make_images):
    root = tmp_path_factory.mktemp("demo-data")
    x, y = make_images(n=300, seed=3)
    np.savez(root / "data.npz", x=x, y=y)
    spec = f"npz:{root / 'data.npz'}"
    return DemoPlan(
        recipe=EmbedConfig(
            data=spec,
            epochs=8,
            batch_size=32,
            lr=3e-3,
            rep_dim=64,  # at 16 every toy encoder learns the same (CKA 0.99): nothing to tell apart
            wm_fraction=0.5,
            wm_intervals="half",  # the default draws a secret per run: this test must reproduce
        ),
        independent=6,
        # other owners' intervals turned from the victim's by 60° and 120° (secret draws by default)
        owner_intervals=("60:240,240:420", "120:300,300:480"),
        losses=("mse",),
        attack=StealConfig(
            data=spec, public_split=True, queries=600, epochs=40, lr=3e-3, augment_queries=True
        ),
        challenge=ChallengeSettings(samples=100, noise_points=20, noise_draws=5),
    )


def test_demo_tells_the_story_and_resume_reuses_every_model(plan, tmp_path):
    result = run_demo(tmp_path / "d", plan, device="cpu")
    by_name = {r.suspect: r for r in result.rows}
    assert set(by_name) == {"stolen-mse", "independent-6"}
    # a real copy (run_steal, 600 augmented queries of the victim's public images) is stolen,
    # with evidence from two families
    copy = by_name["stolen-mse"]
    assert copy.verdict == "stolen", copy.strongest
    # the independent encoder is never accused, and seven references are too few to clear it
    # (nine tests against five references cannot see a suspect 4 sds away)
    assert by_name["independent-6"].verdict == "inconclusive"
    assert all(r.check == "ok" for r in result.rows)
    assert result.ok
    # the independent encoder is calibrated against the others only, never against itself
    inputs = read_statement(by_name["independent-6"].report)["predicate"]["inputs"]
    assert len(inputs["references"]) == 5 + 2  # the other independents and two other owners
    assert not any(r.endswith("independent-6") for r in inputs["references"])
    again = run_demo(tmp_path / "d", plan, device="cpu", resume=True)
    assert set(again.timings) == {"total"}  # nothing trained again
    assert [r.verdict for r in again.rows] == [r.verdict for r in result.rows]


def test_demo_refuses_too_few_independent_encoders_and_a_busy_folder(plan, tmp_path):
    with pytest.raises(SleuthError, match="at least 6"):
        run_demo(tmp_path / "a", DemoPlan(independent=5))
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    res = CliRunner().invoke(app, ["demo", "--out", str(busy), "--json"])
    assert res.exit_code == 2 and "not empty" in res.output
    assert [p.name for p in busy.iterdir()] == ["x"]
    assert not (tmp_path / "a").exists()
