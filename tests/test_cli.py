"""The CLI through CliRunner, and ``python -m sleuth`` and ``torchrun`` as users run them."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from sleuth.cli import app
from sleuth.fileio import sha256_file
from sleuth.models import load_encoder
from sleuth.serve.process import free_port

runner = CliRunner()
TINY = ["--epochs", "1", "--batch-size", "16", "--rep-dim", "16", "--device", "cpu", "--quiet"]


def _embed(spec: str, out: Path, *extra: str):
    return runner.invoke(app, ["embed", "--data", spec, "--out", str(out), *TINY, *extra])


def test_embed_writes_artifacts_with_a_true_manifest(tiny_npz, tmp_path):
    res = _embed(tiny_npz, tmp_path / "v")
    assert res.exit_code == 0, res.output
    manifest = json.loads((tmp_path / "v" / "manifest.json").read_text())
    for name in ("encoder.pt", "owner-key.pt"):
        assert manifest["files"][name]["sha256"] == sha256_file(tmp_path / "v" / name)
    assert manifest["seed"] == 0 and manifest["environment"]["torch"] == torch.__version__
    assert 0 <= manifest["metrics"]["watermark_accuracy"] <= 1
    assert manifest["details"]["config"]["data"] == tiny_npz


def test_bad_data_is_one_line_exit_2_and_leaves_nothing(tmp_path):
    for spec in ("nosuchkind:x", f"npz:{tmp_path / 'missing.npz'}"):
        res = _embed(spec, tmp_path / "out")
        assert res.exit_code == 2
        assert res.output.strip().count("\n") == 0 and "error" in res.output
        assert "Traceback" not in res.output
        assert not (tmp_path / "out").exists()


def test_existing_output_needs_force(tiny_npz, tmp_path):
    out = tmp_path / "v"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    res = _embed(tiny_npz, out)
    assert res.exit_code == 2 and "--force" in res.output
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert _embed(tiny_npz, out, "--force").exit_code == 0


def test_bad_intervals_and_arch_are_refused_before_training(tiny_npz, tmp_path):
    for extra in (["--wm-intervals", "0:10"], ["--arch", "vgg"]):
        res = _embed(tiny_npz, tmp_path / "o", *extra)
        assert res.exit_code == 2, res.output
        assert not (tmp_path / "o").exists()


def test_evaluate_and_convert(tiny_npz, tmp_path):
    assert _embed(tiny_npz, tmp_path / "v").exit_code == 0
    enc = tmp_path / "v" / "encoder.pt"
    res = runner.invoke(app, ["evaluate", str(enc), "--task", tiny_npz, "--json"])
    assert res.exit_code == 0, res.output
    probe = json.loads(res.stdout)
    assert 0 <= probe["accuracy"] <= 1 and probe["n_train"] + probe["n_test"] == 96
    st = tmp_path / "e.safetensors"
    assert runner.invoke(app, ["convert", str(enc), str(st)]).exit_code == 0
    res2 = runner.invoke(app, ["evaluate", str(st), "--task", tiny_npz, "--json"])
    assert json.loads(res2.stdout)["accuracy"] == probe["accuracy"]
    assert runner.invoke(app, ["convert", str(enc), str(st)]).exit_code == 2  # exists, no --force
    x = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(load_encoder(enc)(x), load_encoder(st)(x))


def test_evaluate_refuses_hostile_and_unlabelled_inputs(tmp_path, tiny_npz):
    evil = tmp_path / "evil.pt"
    torch.save({"x": subprocess.Popen}, evil)  # a global the weights-only unpickler must refuse
    res = runner.invoke(app, ["evaluate", str(evil), "--task", tiny_npz])
    assert res.exit_code == 2 and "refused" in res.output


def test_help_documents_every_embed_option():
    res = runner.invoke(app, ["embed", "--help"])
    assert res.exit_code == 0
    for opt in (
        "--data",
        "--arch",
        "--epochs",
        "--batch-size",
        "--lr",
        "--seed",
        "--no-watermark",
        "--wm-weight",
        "--wm-intervals",
        "--resume",
        "--download",
        "--preset",
        "--force",
        "--quiet",
    ):
        assert opt in res.output


def test_python_dash_m_sleuth_runs():
    res = subprocess.run(
        [sys.executable, "-m", "sleuth", "--version"], capture_output=True, text=True
    )
    assert res.returncode == 0 and res.stdout.startswith("sleuth ")


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tiny_npz, tmp_path):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    assert torchrun, "torchrun is installed with torch"
    out = tmp_path / "ddp"
    cmd = [
        torchrun,
        "--nproc-per-node",
        "2",
        "--master-port",
        str(free_port()),  # a fixed port collides with another run of the suite
        "-m",
        "sleuth",
        "embed",
        "--data",
        tiny_npz,
        "--out",
        str(out),
        *TINY,
    ]
    res = subprocess.run(
        cmd, capture_output=True, text=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert res.returncode == 0, res.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["details"]["world_size"] == 2
    assert load_encoder(out / "encoder.pt").rep_dim == 16


def test_ci_runs_exactly_the_readme_test_command():
    root = Path(__file__).resolve().parents[1]
    ci_lines = (root / ".ci" / "run").read_text().splitlines()
    test_cmd = next(line for line in ci_lines if "pytest" in line)
    assert test_cmd in (root / "README.md").read_text().splitlines()


def test_arch_options_reach_the_architecture_and_bad_ones_are_refused(tiny_npz, tmp_path):
    res = _embed(tiny_npz, tmp_path / "w", "--arch-option", "widths=[8,16,24]")
    assert res.exit_code == 0, res.output
    enc = load_encoder(tmp_path / "w" / "encoder.pt")
    assert enc.config.arch_kwargs["widths"] == [8, 16, 24]
    for bad in ("nonsense", "depth=3"):
        res = _embed(tiny_npz, tmp_path / "x", "--arch-option", bad)
        assert res.exit_code == 2 and "arch" in res.output
        assert not (tmp_path / "x").exists()


def test_json_mode_prints_only_json(tiny_npz, tmp_path):
    """archs, keys init and convert with --json: stdout parses as JSON and holds nothing else
    (progress and notes go to stderr)."""
    res = runner.invoke(app, ["archs", "--json"])
    assert res.exit_code == 0 and {a["name"] for a in json.loads(res.stdout)} >= {"smallresnet"}
    res = runner.invoke(app, ["keys", "init", "--out", str(tmp_path / "k"), "--json"])
    keys = json.loads(res.stdout)
    assert res.exit_code == 0 and len(keys["fingerprint"]) == 64
    assert _embed(tiny_npz, tmp_path / "v").exit_code == 0
    target = tmp_path / "e.safetensors"
    res = runner.invoke(app, ["convert", str(tmp_path / "v" / "encoder.pt"), str(target), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["rep_dim"] == 16 and target.exists()


def test_a_seed_beyond_64_bits_is_one_line_and_leaves_nothing(tiny_npz, tmp_path):
    huge = str(2**64)
    res = runner.invoke(
        app, ["embed", "--data", tiny_npz, "--out", str(tmp_path / "e"), "--seed", huge]
    )
    assert res.exit_code == 2 and "seed=" in res.output and not (tmp_path / "e").exists()
    res = runner.invoke(
        app, ["steal", "--victim", "x", "--out", str(tmp_path / "s"), "--seed", huge]
    )
    assert res.exit_code == 2 and "seed=" in res.output and not (tmp_path / "s").exists()


def test_progress_bars_draw_the_typed_events(monkeypatch):
    """Each printer takes the events its producers send (sleuth.progress), and the bench's
    prints each finished cell with its seconds."""
    from rich.console import Console

    from sleuth import cli
    from sleuth.progress import (
        CellDone,
        CellReused,
        CellsPlanned,
        CellStarted,
        EmbedStep,
        StageStep,
        TrainStep,
    )

    step = TrainStep("head", epoch=2, epochs=3, step=1, steps=4, loss=0.5)
    assert (step.done, step.total) == (5, 12)
    console = Console(record=True, width=100, force_terminal=False)
    monkeypatch.setattr(cli, "err", console)
    with cli.EmbedProgress(enabled=True) as bar:
        bar(EmbedStep("train", 1, 2, 3, 4, loss=0.25, wm_acc=0.5, images_per_s=100.0))
    with cli.StageProgress(enabled=True) as bar:
        bar(StageStep("query", 10, 40))
        bar(step)
    with cli.BenchProgress(enabled=True) as bar:
        for ev in (
            CellsPlanned(2),
            CellReused("a", 1),
            CellStarted("b", 2, "label"),
            StageStep("epoch 1/1", 1, 2),
            CellDone("b", 2, 3.4),
        ):
            bar(ev)
    text = console.export_text()
    assert "epoch 1/2" in text and "10 queries" in text and "epoch 2/3 loss 0.5000" in text
    assert "b: 3 s" in text
