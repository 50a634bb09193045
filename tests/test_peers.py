"""The peers benchmark (``sleuth bench --suite peers*``): ratios, the JSON it prints and writes,
the refusal without lightly, the trainer processes, and (with lightly) that both trainers start
from the same network and see views of the same shape."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest
import torch
from typer.testing import CliRunner

from sleuth.bench import peers
from sleuth.bench.peers import PEER_SUITES, PeerRun, PeerSuite, run_peers, summarise
from sleuth.cli import app
from sleuth.errors import SleuthError

runner = CliRunner()
SPEEDS = {"sleuth": 1200.0, "sleuth+wm": 1150.0, "lightly": 800.0}
ACCS = {"sleuth": 0.80, "sleuth+wm": 0.797, "lightly": 0.803}


def _row(trainer, arch="smallresnet", ips=None, acc=None, rss=900.0, images=1000, seed=0):
    ips = SPEEDS[trainer] if ips is None else ips
    return {
        "trainer": trainer,
        "arch": arch,
        "seed": seed,
        "images": images,
        "train_s": images / ips,
        "images_per_s": ips,
        "median_step_images_per_s": ips * 1.1,
        "final_loss": 5.0,
        "peak_rss_mb": rss,
        "workers_peak_rss_mb": 0.0,
        "probe_acc": ACCS[trainer] if acc is None else acc,
    }


def test_summarise_takes_ratios_within_a_network():
    trainers, ratios = summarise(
        [_row("sleuth", rss=880.0), _row("sleuth+wm"), _row("lightly", rss=1100.0)]
    )
    by = {t["name"]: t for t in trainers}
    assert by["lightly"]["ratio"] == pytest.approx(1.0)
    assert by["sleuth"]["ratio"] == pytest.approx(1200 / 800)
    assert by["sleuth+wm"]["ratio"] == pytest.approx(1150 / 800)
    r = ratios["smallresnet"]
    assert r["sleuth_over_lightly"] == pytest.approx(1.5)
    assert r["watermark_time_ratio"] == pytest.approx(1200 / 1150)
    assert r["median_sleuth_over_lightly"] == pytest.approx(1.5)
    assert r["median_watermark_time_ratio"] == pytest.approx(1200 / 1150)
    assert r["probe_gap_pt"] == pytest.approx(-0.3) and r["probe_within_half_pt"]
    assert r["rss_sleuth_over_lightly"] == pytest.approx(0.8)
    assert r["goal_speed_met"] and r["goal_watermark_met"]


def test_more_accurate_is_no_failure_but_not_equal_accuracy():
    rows = [_row("sleuth", acc=0.818), _row("sleuth+wm"), _row("lightly")]
    r = summarise(rows)[1]["smallresnet"]
    assert r["probe_gap_pt"] == pytest.approx(1.5)
    assert r["goal_speed_met"] and not r["probe_within_half_pt"]


def test_summarise_fails_the_goals_it_should():
    # faster but 1.3 points less accurate; the watermark costs 1.2x
    rows = [_row("sleuth", ips=900.0, acc=0.79), _row("sleuth+wm", ips=750.0), _row("lightly")]
    r = summarise(rows)[1]["smallresnet"]
    assert r["sleuth_over_lightly"] == pytest.approx(900 / 800)
    assert r["watermark_time_ratio"] == pytest.approx(1.2)
    assert not r["goal_speed_met"] and not r["goal_watermark_met"]


def test_summarise_keeps_networks_apart():
    rows = [_row(t) for t in SPEEDS] + [_row(t, "resnet18", SPEEDS[t] / 20) for t in SPEEDS]
    rows[-1]["images_per_s"] = 20.0  # resnet18's lightly: 60 / 20 = 3x
    trainers, ratios = summarise(rows)
    assert {(t["arch"], t["name"]) for t in trainers} == {
        (a, n) for a in ("smallresnet", "resnet18") for n in SPEEDS
    }
    assert ratios["smallresnet"]["sleuth_over_lightly"] == pytest.approx(1.5)
    assert ratios["resnet18"]["sleuth_over_lightly"] == pytest.approx(3.0)


def test_seeds_pair_the_trainers_within_a_seed_and_summarise_across_seeds():
    # seed 0: sleuth 1.5x, 1 pt behind; seed 1: 2x, 1 pt ahead; seed 2: 1.2x, level
    rows = []
    for seed, ips, acc in ((0, 1200.0, 0.79), (1, 1600.0, 0.81), (2, 960.0, 0.80)):
        rows += [_row("sleuth", ips=ips, acc=acc, seed=seed), _row("lightly", seed=seed)]
    trainers, ratios = summarise(rows)
    assert [t["ratio"] for t in trainers if t["name"] == "sleuth"] == pytest.approx([1.5, 2, 1.2])
    r = ratios["smallresnet"]
    assert [s["seed"] for s in r["seeds"]] == [0, 1, 2]
    assert [s["probe_gap_pt"] for s in r["seeds"]] == pytest.approx([-1.3, 0.7, -0.3])
    assert r["sleuth_over_lightly"] == pytest.approx(1.5)  # the median seed's
    assert r["probe_gap_pt"] == pytest.approx(-0.3)  # the mean gap
    # gaps -1.3, 0.7, -0.3: sd 1.0; t(0.975, 2 df) = 4.3027; half-width 4.3027 / sqrt(3)
    assert r["probe_gap_sd_pt"] == pytest.approx(1.0)
    lo, hi = r["probe_gap_ci95_pt"]
    assert lo == pytest.approx(-0.3 - 2.4841, abs=1e-3) and hi == pytest.approx(
        -0.3 + 2.4841, abs=1e-3
    )
    assert r["goal_speed_met"] and r["probe_within_half_pt"]
    # without the watermarked trainer there is no watermark ratio to judge
    assert "watermark_time_ratio" not in r and "goal_watermark_met" not in r


def test_one_seed_has_no_spread_and_a_trainer_without_its_peer_has_no_ratio():
    r = summarise([_row(t) for t in SPEEDS])[1]["smallresnet"]
    assert r["probe_gap_sd_pt"] is None and r["probe_gap_ci95_pt"] is None
    assert len(r["seeds"]) == 1
    trainers, ratios = summarise([_row("sleuth", seed=0), _row("lightly", seed=1)])
    assert [t["ratio"] for t in trainers] == [None, pytest.approx(1.0)] and ratios == {}


@pytest.mark.parametrize(
    "bad",
    [
        dict(trainers=("sleuth", "sleuth+wm")),
        dict(trainers=("lightly", "x")),
        dict(seeds=(1, 1)),
        dict(seeds=()),
    ],
)
def test_a_peer_suite_needs_both_trainers_and_distinct_seeds(bad):
    with pytest.raises(SleuthError, match="peers suite"):
        PeerSuite("bad", runs=(PeerRun("smallresnet", 512, 1),), **bad)


def test_run_peers_repeats_every_network_under_each_seed(monkeypatch, tmp_path):
    calls = []

    def fake(specs, folder, on_round):
        calls.append(specs)
        return [_row(s["trainer"], s["arch"], seed=s["seed"]) for s in specs]

    runs = (PeerRun("smallresnet", 512, 1), PeerRun("resnet18", 256, 1))
    suite = PeerSuite("test", runs=runs, seeds=(4, 9), trainers=("sleuth", "lightly"))
    monkeypatch.setitem(PEER_SUITES, "peers-seeds-test", suite)
    monkeypatch.setattr(peers, "require_lightly", lambda: "9.9-test")
    monkeypatch.setattr(peers, "run_lockstep", fake)
    got = run_peers("peers-seeds-test", tmp_path / "p", data="demo", device="cpu").results
    assert [(c[0]["arch"], c[0]["seed"]) for c in calls] == [
        ("smallresnet", 4),
        ("resnet18", 4),
        ("smallresnet", 9),
        ("resnet18", 9),
    ]
    assert all([s["trainer"] for s in c] == ["sleuth", "lightly"] for c in calls)
    assert got["seeds"]["train"] == [4, 9] and got["settings"]["trainers"] == ["sleuth", "lightly"]
    assert [s["seed"] for s in got["ratios"]["resnet18"]["seeds"]] == [4, 9]
    assert len(got["trainers"]) == 8


@pytest.fixture
def fake_suite(monkeypatch):
    """A suite whose networks are recorded, not trained; lightly taken as installed."""
    calls: list[list[dict]] = []

    def fake(specs, folder, on_round):
        calls.append(specs)
        on_round(1)
        return [_row(s["trainer"], s["arch"], seed=s["seed"]) for s in specs]

    suite = PeerSuite("test", runs=(PeerRun("smallresnet", 512, 1),), seeds=(7,))
    monkeypatch.setitem(PEER_SUITES, "peers-test", suite)
    monkeypatch.setattr(peers, "require_lightly", lambda: "9.9-test")
    monkeypatch.setattr(peers, "run_lockstep", fake)
    return calls


def test_run_peers_records_machine_command_seeds_and_equal_settings(fake_suite, tmp_path):
    result = run_peers("peers-test", tmp_path / "p", data="demo", device="cpu")
    on_disk = json.loads((tmp_path / "p" / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(result.results))
    assert on_disk["command"] == (
        f"sleuth bench --suite peers-test --data demo --device cpu --out {tmp_path / 'p'}"
    )
    assert on_disk["seeds"] == {"train": [7], "split": [7], "loader": [7]}
    assert {"cpu", "cores", "torch_threads", "memory_gib"} <= set(on_disk["machine"])
    assert on_disk["versions"]["lightly"] == "9.9-test" and on_disk["versions"]["torch"]
    # one network, its three trainers with the same settings but their names
    (specs,) = fake_suite
    assert [s["trainer"] for s in specs] == list(SPEEDS)
    shared = [{k: v for k, v in s.items() if k != "trainer"} for s in specs]
    assert all(s == shared[0] for s in shared)
    assert shared[0]["seed"] == 7 and shared[0]["images"] == 512 and shared[0]["task"] == "demo"


def test_cli_json_prints_each_trainer_with_its_ratio(fake_suite, tmp_path):
    out = tmp_path / "p"
    res = runner.invoke(
        app, ["bench", "--suite", "peers-test", "--data", "demo", "--out", str(out), "--json"]
    )
    assert res.exit_code == 0, res.output
    printed = json.loads(res.stdout)
    assert printed["suite"] == "peers-test"
    rows = {t["name"]: t for t in printed["trainers"]}
    assert set(rows) == set(SPEEDS)
    for row in rows.values():
        assert {"name", "images_per_s", "peak_rss_mb", "probe_acc", "ratio"} <= set(row)
    assert rows["sleuth"]["ratio"] == pytest.approx(1.5)
    assert rows["sleuth"]["probe_acc"] == 0.80


def test_cli_refuses_a_missing_lightly_in_one_line(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "lightly" else real(name, *a)
    )
    out = tmp_path / "p"
    res = runner.invoke(app, ["bench", "--suite", "peers-quick", "--out", str(out), "--json"])
    assert res.exit_code == 2
    assert res.stdout == ""
    assert len(res.stderr.strip().splitlines()) == 1 and ".[peers]" in res.stderr
    assert not out.exists()


def test_cli_refuses_papers_options_and_a_foreign_folder(fake_suite, tmp_path):
    res = runner.invoke(app, ["bench", "--suite", "peers-test", "--list"])
    assert res.exit_code == 2 and "--list" in res.stderr
    foreign = tmp_path / "f"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    res = runner.invoke(app, ["bench", "--suite", "peers-test", "--out", str(foreign), "--json"])
    assert res.exit_code == 2 and "holds no peers bench" in res.stderr
    assert fake_suite == []


# A trainer that speaks the turns protocol without torch: it logs each step it takes to a shared
# file, so the test sees the order in which the processes trained.
FAKE_TRAINER = """
import json, os, sys
from pathlib import Path

def worker_main(spec_path, result_path, fd_in, fd_out):
    spec = json.loads(Path(spec_path).read_text())
    go, say = os.fdopen(int(fd_in), "rb", buffering=0), os.fdopen(int(fd_out), "wb", buffering=0)
    if spec["steps"] < 0:
        raise SystemExit(3)
    def wait(word):
        say.write(word)
        assert go.read(1) == b"g"
    wait(b"r")
    for k in range(spec["steps"]):
        with open(spec["log"], "a") as fh:
            fh.write(f"{spec['trainer']}{k} ")
        wait(b"r")
    wait(b"d")
    bench = "sleuth.bench" in sys.modules
    Path(result_path).write_text(json.dumps({"module": __name__, "bench": bench, **spec}))
"""


def test_trainers_take_turns_of_one_step_in_processes_of_their_own(monkeypatch, tmp_path):
    fake = tmp_path / "fake_trainers.py"
    fake.write_text(FAKE_TRAINER)
    monkeypatch.setattr(peers, "TRAINERS_FILE", fake)
    log = tmp_path / "steps.txt"
    specs = [
        {"trainer": t, "arch": "a", "seed": 0, "steps": n, "log": str(log)}
        for t, n in (("x", 3), ("y", 1), ("z", 2))
    ]
    rounds: list[int] = []
    got = peers.run_lockstep(specs, tmp_path, rounds.append)
    # one step each in a round, in order, then in reverse; a trainer that is done drops out
    assert log.read_text().split() == ["x0", "y0", "z0", "z1", "x1", "x2"]
    assert rounds == [1, 2, 3, 4]
    # loaded by path under its own name, without importing the sleuth.bench package
    assert [g["trainer"] for g in got] == ["x", "y", "z"]
    assert all(g["module"] == "sleuth.bench.peer_trainers" and not g["bench"] for g in got)


def test_a_failed_trainer_names_its_log_and_stops_the_others(monkeypatch, tmp_path):
    fake = tmp_path / "fake_trainers.py"
    fake.write_text(FAKE_TRAINER)
    monkeypatch.setattr(peers, "TRAINERS_FILE", fake)
    log = str(tmp_path / "steps.txt")
    specs = [{"trainer": "ok", "arch": "a", "seed": 0, "steps": 5, "log": log}]
    specs.append({"trainer": "bad", "arch": "a", "seed": 0, "steps": -1, "log": log})
    with pytest.raises(
        SleuthError, match=r"trainer a-bad-seed0 failed \(exit 3\): see .*a-bad-seed0\.log"
    ):
        peers.run_lockstep(specs, tmp_path)
    assert not (tmp_path / "a-ok-seed0.json").exists()


# ---- with lightly installed: the trainers themselves, tiny ----


@pytest.fixture
def trainers(monkeypatch):
    """peer_trainers.py loaded as a trainer's process loads it."""
    pytest.importorskip("lightly")
    spec = importlib.util.spec_from_file_location("sleuth.bench.peer_trainers", peers.TRAINERS_FILE)
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, mod)
    spec.loader.exec_module(mod)
    return mod


def _spec(mod, trainer, tiny_npz, **kw):
    fields = dict(
        trainer=trainer,
        arch="smallresnet",
        data=tiny_npz,
        task=tiny_npz,
        images=None,
        epochs=1,
        batch_size=16,
        lr=1e-3,
        weight_decay=1e-6,
        temperature=0.5,
        proj_dim=8,
        seed=3,
        threads=torch.get_num_threads(),
        workers=0,
        probe=True,
        probe_images=None,
    )
    return mod.TrainSpec(**{**fields, **kw})


def test_lightly_and_sleuth_start_from_the_same_network(trainers, tiny_npz):
    mod = trainers
    from sleuth.data import input_spec_for
    from sleuth.embed.config import EmbedConfig
    from sleuth.embed.trainer import SimCLRModel
    from sleuth.models import Encoder, encoder_config

    private = mod.training_images(_spec(mod, "lightly", tiny_npz))
    inp = input_spec_for(private)
    torch.manual_seed(3)
    ours = SimCLRModel(Encoder(encoder_config("smallresnet", inp)), EmbedConfig(proj_dim=8), 2)
    torch.manual_seed(3)
    theirs = mod.SimCLR(Encoder(encoder_config("smallresnet", inp)), 8)
    a = [p for n, p in ours.named_parameters() if not n.startswith("predictor")]
    b = list(theirs.parameters())
    assert [p.shape for p in a] == [p.shape for p in b]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    # lightly's transform set to sleuth's recipe: two views of the data's own shape, in [0, 1]
    views, _ = mod.PILImages(private.images, mod.lightly_transform(inp))[0]
    assert len(views) == 2 and views[0].shape == private.images[0].shape
    assert 0 <= float(views[0].min()) and float(views[0].max()) <= 1


@pytest.mark.parametrize("trainer", ["lightly", "sleuth+wm"])
def test_each_trainer_trains_measures_and_probes(trainers, tiny_npz, trainer):
    mod = trainers
    got = mod.run_trainer(_spec(mod, trainer, tiny_npz))
    # the private half of the 77 training images: 38, so 2 full batches of 16
    assert got["trainer"] == trainer and got["images"] == 32 and got["steps"] == 2
    # step_s is rounded to 0.1 ms each: its sum is within 0.1 ms of the exact train_s
    assert len(got["step_s"]) == 2 and got["train_s"] == pytest.approx(sum(got["step_s"]), abs=1e-4)
    # the rate of the steps after the first (which also built the model)
    assert got["images_per_s"] == pytest.approx(16 / got["step_s"][1], 1e-2)
    assert got["first_step_s"] == pytest.approx(got["step_s"][0], 1e-2)
    assert got["peak_rss_mb"] > 50 and 0 <= got["probe_acc"] <= 1
    assert got["final_loss"] == got["final_loss"]  # not NaN
