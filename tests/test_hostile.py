"""Hostile and mistaken input through the CLI, as a new user meets it: one line naming the
problem, exit code 2, no traceback, and nothing left behind."""

import copy
import json
import warnings

import h5py
import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from sleuth.cli import app
from sleuth.data import InputSpec
from sleuth.models import Encoder, encoder_config
from sleuth.models.artifacts import encoder_header

runner = CliRunner()


def refused(args, message, env=None):
    res = runner.invoke(app, args, env=env)
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1, res.output
    return res


@pytest.fixture
def one_class(tmp_path):
    path = tmp_path / "one.npz"
    np.savez(path, x=np.zeros((50, 1, 16, 16), np.uint8), y=np.zeros(50, np.int64))
    return f"npz:{path}"


def test_an_encrypted_key_without_a_terminal_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("SLEUTH_KEY_PASSPHRASE", raising=False)
    refused(["keys", "init", "--out", str(tmp_path / "k"), "--encrypt"], "SLEUTH_KEY_PASSPHRASE")
    assert not (tmp_path / "k" / "sleuth-signing.key").exists()


def test_a_symlink_loop_as_the_suspect(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    refused(["verify", str(tmp_path / "a"), "--victim", str(tmp_path)], "cannot resolve")


def test_an_absurd_image_size_is_refused(tmp_path):
    refused(
        ["embed", "--data", f"folder:{tmp_path}?size=100000", "--out", str(tmp_path / "o")],
        "from 8 to 1024",
    )
    assert not (tmp_path / "o").exists()


def test_a_probe_needs_two_classes(one_class, tmp_path):
    res = runner.invoke(
        app,
        [
            "embed",
            "--data",
            one_class,
            "--out",
            str(tmp_path / "v"),
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--rep-dim",
            "8",
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    refused(["evaluate", str(tmp_path / "v" / "encoder.pt"), "--task", one_class], "2 classes")


def test_fewer_images_than_a_batch_leaves_no_folder(one_class, tmp_path):
    refused(
        ["embed", "--data", one_class, "--out", str(tmp_path / "o"), "--batch-size", "256"],
        "fewer than one batch",
    )
    assert not (tmp_path / "o").exists()


# --- files from outside: answers, saved results, encoder headers ------------------------------


def refused_quietly(args, message):
    """``refused``, with Python's warnings as errors: a warning would print lines of its own
    before the refusal (torch's zero-element one, numpy's overflow in a cast)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("error", UserWarning)
        return refused(args, message)


def _answers(path, x=None, answers=None):
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "sleuth-answers"
        f.attrs["victim"] = "someone"
        f.create_dataset("x", data=np.zeros((4, 1, 16, 16), np.uint8) if x is None else x)
        ones = np.ones((4, 8), np.float32)
        f.create_dataset("answers", data=ones if answers is None else answers)
    return str(path)


@pytest.mark.parametrize(
    "content,message",
    [
        ({"x": np.arange(4 * 256, dtype=np.int32).reshape(4, 1, 16, 16)}, "uint8 or floats"),
        ({"answers": np.full((4, 8), 1e300)}, "beyond float32"),
    ],
)
def test_a_hostile_answers_file_as_victim(tmp_path, content, message):
    """int32 queries and no keys, or answers float32 cannot hold: one line, no --out."""
    victim = _answers(tmp_path / "answers.h5", **content)
    refused_quietly(["steal", "--victim", victim, "--out", str(tmp_path / "o")], message)
    assert not (tmp_path / "o").exists()


def test_report_make_on_a_result_that_is_not_a_verification(tmp_path):
    saved = tmp_path / "saved.h5"
    with h5py.File(saved, "w") as f:
        f.attrs["format"] = "sleuth-evidence"
        f.attrs["format_version"] = 1
        f.attrs["result"] = "[1, 2]"
    refused(["report", "make", str(saved), "--out", str(tmp_path / "r")], "not a verification")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved.h5"]


def test_a_budget_the_data_cannot_fill_is_said_not_silently_capped(cli_walk, tmp_path):
    args = ["steal", "--victim", cli_walk.path("victim"), "--data", cli_walk.spec]
    res = runner.invoke(
        app, [*args, "--queries", "100000", "--epochs", "1", "--out", str(tmp_path / "o"), "--json"]
    )
    assert res.exit_code == 0, res.output
    assert "note: --queries 100,000 needs 100,000 distinct images" in " ".join(res.stderr.split())
    summary = json.loads(res.stdout)
    used = summary["queries_used"]  # every image the thief holds, asked once
    assert used < 100 and f"holds {used}: the attack asks about those {used}" in summary["notes"][0]


@pytest.fixture(scope="module")
def tiny_encoder():
    torch.manual_seed(0)
    spec = InputSpec(1, 16, (0.5,), (0.5,))
    encoder = Encoder(encoder_config("smallresnet", spec, 8, widths=[4, 4, 4]))
    state = {k: v.contiguous() for k, v in encoder.backbone.state_dict().items()}
    return encoder_header(encoder), state


def _cast(state, dtype):
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}


HEADER_EDITS = {
    "size 28.7": (lambda h: h["input_spec"].update(size=28.7), "must be integers, got 1 and 28.7"),
    "size 1e9": (lambda h: h["input_spec"].update(size=10**9), "from 8 to 1024"),
    "rep_dim 0": (lambda h: h.update(rep_dim=0), "rep_dim must be an integer from 1"),
    "rep_dim 1e12": (lambda h: h.update(rep_dim=10**12), "rep_dim must be an integer from 1"),
    "rep_dim 8.5": (lambda h: h.update(rep_dim=8.5), "rep_dim must be an integer from 1"),
    "widths 8192": (lambda h: h["arch_kwargs"].update(widths=[8192] * 3), "more than the"),
    "widths 16": (lambda h: h["arch_kwargs"].update(widths=[16] * 3), "has shape"),
    "a list": (lambda h: h.clear(), None),
}


@pytest.mark.parametrize("edit", list(HEADER_EDITS))
def test_a_hostile_encoder_header_is_refused_before_building(tiny_encoder, tmp_path, edit):
    """Sizes in a header are checked (integers, bounded) and against the file's tensors on the
    meta device before anything is built: none is truncated, none allocates."""
    header, state = tiny_encoder
    header = copy.deepcopy(header)
    change, message = HEADER_EDITS[edit]
    change(header)
    path = tmp_path / "e.pt"
    torch.save({**header, "state_dict": state} if header else [1, 2], path)
    target = tmp_path / "out.safetensors"
    refused_quietly(["convert", str(path), str(target)], message or "holds a list")
    assert not target.exists()


@pytest.mark.parametrize("dtype", [torch.int64, torch.float16, torch.float64])
def test_weights_of_another_dtype_are_refused_not_cast(tiny_encoder, tmp_path, dtype):
    header, state = tiny_encoder
    torch.save({**header, "state_dict": _cast(state, dtype)}, tmp_path / "e.pt")
    name = str(dtype).removeprefix("torch.")
    refused(["convert", str(tmp_path / "e.pt"), str(tmp_path / "o.pt")], f"is {name}")


@pytest.mark.parametrize(
    "meta,message",
    [
        ("[1, 2]", "a JSON list, not an object"),
        ("3", "a JSON int, not an object"),
        ("[" * 10_000 + "]" * 10_000, "not valid JSON (RecursionError)"),
        ('{"rep_dim": 1' + "0" * 5000 + "}", "not valid JSON (ValueError)"),
    ],
)
def test_hostile_safetensors_metadata(tiny_encoder, tmp_path, meta, message):
    _, state = tiny_encoder
    path = tmp_path / "e.safetensors"
    save_file(state, str(path), metadata={"format": "sleuth-encoder", "sleuth": meta})
    refused(["convert", str(path), str(tmp_path / "o.pt")], message)


def test_converting_a_file_onto_itself_keeps_its_bytes(tiny_encoder, tmp_path):
    """The same model gives the same bytes (torch used to name the archive after the temporary
    file), so a manifest's SHA-256 survives `convert A A --force`."""
    header, state = tiny_encoder
    path = tmp_path / "e.pt"
    torch.save({**header, "state_dict": state}, path)
    assert runner.invoke(app, ["convert", str(path), str(path), "--force"]).exit_code == 0
    first = path.read_bytes()
    assert runner.invoke(app, ["convert", str(path), str(path), "--force"]).exit_code == 0
    assert path.read_bytes() == first


def test_rerun_replays_only_a_checked_statement(cli_walk, tmp_path, monkeypatch):
    """A forged statement would otherwise be replayed as if it were the signer's: rerun needs
    --pub (checked first: another key fails with exit 1) or an explicit --unsigned-ok."""

    def ran(*_args, **_kwargs):
        raise AssertionError("replayed")

    monkeypatch.setattr("sleuth.verify.run_verify", ran)
    report = cli_walk.path("report")
    refused(["report", "rerun", report], "--unsigned-ok")
    assert runner.invoke(app, ["keys", "init", "--out", str(tmp_path / "k")]).exit_code == 0
    wrong_key = str(tmp_path / "k" / "sleuth-signing.pub")
    other = runner.invoke(app, ["report", "rerun", report, "--pub", wrong_key])
    assert other.exit_code == 1 and "FAIL" in other.output


def test_a_tensor_that_claims_more_than_the_file_stores(tiny_encoder, tmp_path):
    """An expanded (stride 0) tensor makes a small file describe a large module: refused."""
    header, state = tiny_encoder
    name = "trunk.layer3.conv2.weight"
    state = {**state, name: torch.zeros(1).expand(state[name].shape)}
    torch.save({**header, "state_dict": state}, tmp_path / "e.pt")
    refused(["convert", str(tmp_path / "e.pt"), str(tmp_path / "o.pt")], "claims more numbers")
