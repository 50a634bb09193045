"""The CLI's grammar, walked command by command (issue 17): every command that produces a result
prints it with --json as the only thing on stdout, and no command that writes replaces an
existing file or non-empty folder without --force, writes under a file or where nothing can be
written, or computes anything before refusing."""

import json
import os
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from sleuth.cli import app

runner = CliRunner()

WALKED = [
    "archs",
    "embed",
    "references",
    "steal",
    "evaluate",
    "convert",
    "challenge",
    "keys init",
    "verify",
    "report make",
    "report check",
    "report show",
    "report rerun",
    "demo",
    "bench",
    "serve users add",
    "serve users list",
]


def commands_with(option: str) -> set[str]:
    """Every command of the app (as "report make") that takes ``option``."""
    found = set()

    def walk(command, words):
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*words, name])
        if any(option in p.opts for p in command.params):
            found.add(" ".join(words))

    walk(get_command(app), [])
    return found


def one_line(res, *words):
    """A refusal: exit 2, one line naming the problem, no traceback."""
    assert res.exit_code == 2, res.output
    assert len(res.output.strip().splitlines()) == 1 and "Traceback" not in res.output, res.output
    for word in words:
        assert word in res.output, res.output


def test_the_walks_cover_every_command_that_prints_json_or_writes(cli_walk):
    assert commands_with("--json") == set(WALKED) == set(cli_walk.results)
    assert set(_writers(cli_walk)) == set(WRITERS)
    # every command with --force or --out is walked as a writer (evaluate writes nothing)
    writing = commands_with("--force") | commands_with("--out") | {"convert"}
    assert {w.split(" --")[0] for w in WRITERS} == writing


@pytest.mark.parametrize("command", WALKED)
def test_json_output_parses_and_stdout_holds_nothing_else(cli_walk, command):
    res = cli_walk.results[command]
    assert res.exit_code == 0, res.output
    json.loads(res.stdout)  # the whole of stdout: a progress line or a note would break it


def test_what_the_walk_printed_is_the_result(cli_walk):
    r = {name: json.loads(res.stdout) for name, res in cli_walk.results.items()}
    assert r["verify"]["verdict"] in ("stolen", "not_stolen", "inconclusive")
    assert r["report make"]["signer"] is None and r["report check"]["ok"]
    assert r["report show"]["verdict"] == r["verify"]["verdict"] and r["steal"]["notes"] == []
    assert r["embed"]["out"] == cli_walk.path("victim") and r["serve users list"][0]["name"]
    assert "saved the result" in cli_walk.results["verify"].stderr  # notes go to stderr


# --- writing: existing targets, bad places -------------------------------------------------


def _writers(w):
    """Each command that writes: (its arguments for a target, whether the target is a file)."""
    p = w.path
    return {
        "embed": (lambda t: ["embed", "--data", w.spec, "--out", t, *w.embed_options], False),
        "steal": (
            lambda t: ["steal", "--victim", p("victim"), "--data", w.spec, "--out", t],
            False,
        ),
        "references": (lambda t: ["references", "--victim", p("victim"), "--out", t], False),
        "convert": (lambda t: ["convert", p("copy/encoder.pt"), t + ".pt"], True),
        "keys init": (lambda t: ["keys", "init", "--out", t], False),
        "challenge": (lambda t: ["challenge", "--victim", p("victim"), "--out", t + ".h5"], True),
        "report make": (lambda t: ["report", "make", p("saved.h5"), "--out", t], False),
        "verify --save": (lambda t: [*w.verify, "--save", t + ".h5"], True),
        "verify --out": (lambda t: [*w.verify, "--out", t], False),
        "demo": (lambda t: ["demo", "--out", t], False),
        "bench": (lambda t: ["bench", "--out", t], False),
    }


WRITERS = ["embed", "steal", "references", "convert", "keys init", "challenge", "report make"]
WRITERS += ["verify --save", "verify --out", "demo", "bench"]
FILE_SUFFIX = {"convert": ".pt", "challenge": ".h5", "verify --save": ".h5"}


@pytest.fixture
def nothing_computed(monkeypatch):
    """Every command's first costly step fails the test if it is reached (a refusal of the
    target must come before it)."""

    def computed(*_args, **_kwargs):
        raise AssertionError("computed before the target was checked")

    for target in (
        "sleuth.embed.run.train",
        "sleuth.steal.run.open_victim",
        "sleuth.embed.references.run_embed",
        "sleuth.models.load_encoder",
        "sleuth.verify.build_challenge",
        "sleuth.verify.run_verify",
        "sleuth.reports.read_evidence",
        "sleuth.demo.run_embed",
        "sleuth.bench.run_bench",
    ):
        monkeypatch.setattr(target, computed)


def _listing(root: Path) -> list[str]:
    return sorted(str(q.relative_to(root)) for q in root.rglob("*"))


@pytest.mark.parametrize("command", WRITERS)
def test_an_existing_target_is_refused_before_anything_is_computed(
    cli_walk, command, tmp_path, nothing_computed
):
    args, is_file = _writers(cli_walk)[command]
    target = tmp_path / "target"
    if is_file:
        target = target.with_suffix(FILE_SUFFIX[command])
        target.write_bytes(b"mine")
    elif command == "keys init":
        target.mkdir()
        (target / "sleuth-signing.key").write_bytes(b"mine")
    else:
        target.mkdir()
        (target / "keep.txt").write_bytes(b"mine")
    before = _listing(tmp_path)
    res = runner.invoke(app, args(str(tmp_path / "target")))
    # a zoo is completed in place and a bench resumes its own folder: neither takes --force,
    # both refuse a folder that is not theirs
    word = {"references": "holds no zoo", "bench": "holds no bench"}.get(command, "--force")
    one_line(res, word)
    assert _listing(tmp_path) == before
    assert b"mine" in [q.read_bytes() for q in tmp_path.rglob("*") if q.is_file()]


@pytest.mark.parametrize("place", ["under a file", "in /proc", "a folder as a file"])
@pytest.mark.parametrize("command", WRITERS)
def test_an_output_where_none_can_be_is_one_line_and_leaves_nothing(
    cli_walk, command, place, tmp_path, nothing_computed
):
    args, is_file = _writers(cli_walk)[command]
    if place == "in /proc" and not Path("/proc/self").is_dir():
        pytest.skip("no /proc here")
    if place == "a folder as a file" and not is_file:
        pytest.skip("this command writes a folder")
    (tmp_path / "a-file").write_bytes(b"mine")
    target = {
        "under a file": str(tmp_path / "a-file" / "out"),
        "in /proc": "/proc/sleuth-test/out",
        "a folder as a file": str(tmp_path / "folder"),
    }[place]
    if place == "a folder as a file":
        Path(target + FILE_SUFFIX[command]).mkdir()
    before = _listing(tmp_path)
    res = runner.invoke(app, [*args(target), "--force"] if is_file else args(target))
    words = {
        "under a file": "is a file",
        "in /proc": "not writable",
        "a folder as a file": "folder",
    }
    one_line(res, words[place])
    assert _listing(tmp_path) == before and (tmp_path / "a-file").read_bytes() == b"mine"


def test_force_replaces_a_file_atomically(cli_walk, tmp_path):
    """convert, challenge and keys init with --force: the new content, the usual permissions,
    no temporary file left beside it (report make's is in test_reports)."""
    p = cli_walk.path
    target = tmp_path / "e.pt"
    target.write_bytes(b"mine")
    res = runner.invoke(app, ["convert", p("copy/encoder.pt"), str(target), "--force"])
    assert res.exit_code == 0, res.output
    again = tmp_path / "again.pt"
    assert runner.invoke(app, ["convert", str(target), str(again)]).exit_code == 0
    assert target.read_bytes() == again.read_bytes()  # the same model, the same bytes
    (tmp_path / "c.key.json").write_text("mine")
    res = runner.invoke(
        app, ["challenge", "--victim", p("victim"), "--out", str(tmp_path / "c.h5"), "--force"]
    )
    assert res.exit_code == 0 and json.loads((tmp_path / "c.key.json").read_text())["roles"]
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "sleuth-signing.key").write_text("mine")
    assert runner.invoke(app, ["keys", "init", "--out", str(keys), "--force"]).exit_code == 0
    assert (keys / "sleuth-signing.key").read_text().startswith("-----BEGIN PRIVATE KEY")
    assert not [q for q in tmp_path.rglob("*") if q.name.startswith(".")]
    assert os.stat(target).st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_verify_writes_its_report_folder_with_out_as_report_make_does(
    cli_walk, tmp_path, nothing_computed
):
    """--out names an output folder everywhere; verify's --report is its old name, kept for one
    release (the walk wrote its report with --out)."""
    assert commands_with("--out") >= {"embed", "steal", "verify", "report make", "keys init"}
    help_text = runner.invoke(app, ["verify", "--help"], env={"COLUMNS": "200"}).output
    assert "--out" in help_text and "--report" in help_text
    assert (Path(cli_walk.path("report")) / "verdict.json").is_file()
    (tmp_path / "keep.txt").write_text("mine")
    res = runner.invoke(app, [*cli_walk.verify, "--report", str(tmp_path)])
    one_line(res, "not empty", "--force")  # the same folder option under its old name
