"""Hostile and mistaken input through the CLI, as a new user meets it: one line naming the
problem, exit code 2, no traceback, and nothing left behind."""

import numpy as np
import pytest
from typer.testing import CliRunner

from sleuth.cli import app

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
