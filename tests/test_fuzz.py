"""Hostile files fuzzed around valid ones (hypothesis, issue 17): encoder headers in .pt and
.safetensors files, safetensors metadata, challenge keys and report statements give a result or
one line of ``SleuthError`` (exit 2 through the CLI) — never a traceback — and never allocate
more than a stated bound: ``BOUND`` beyond what the process held, enforced by an address-space
limit (Linux), so a header that declares a 360 GB model fails the test if it is built."""

from __future__ import annotations

import copy
import json
import resource
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file
from securesystemslib.dsse import Envelope
from typer.testing import CliRunner

from sleuth.cli import app
from sleuth.data import InputSpec
from sleuth.errors import SleuthError
from sleuth.models import Encoder, encoder_config, load_encoder
from sleuth.models.artifacts import encoder_header
from sleuth.reports import read_statement
from sleuth.reports.envelope import PAYLOAD_TYPE, serialise
from sleuth.verify.challenge import read_challenge_key

BOUND = 1 << 30  # bytes a hostile file of a few kB may make sleuth allocate
# derandomized: the default suite must not pass on one run and fail on the next; no database
# folder in the checkout
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)

torch.manual_seed(0)
ENCODER = Encoder(
    encoder_config("smallresnet", InputSpec(1, 16, (0.5,), (0.5,)), 8, widths=[4] * 3)
)
STATE = {k: v.contiguous() for k, v in ENCODER.backbone.state_dict().items()}
HEADER = encoder_header(ENCODER)
SCRATCH = Path(tempfile.mkdtemp(prefix="sleuth-fuzz-"))


def _vm_bytes() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


@contextmanager
def bounded():
    """An address-space limit at the process's size plus ``BOUND`` while hostile input is read:
    a larger allocation fails (and so does the test) instead of swapping the machine."""
    vm = _vm_bytes()
    if vm is None:  # no /proc: the bound is not enforced here
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (vm + BOUND, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def refused_or_read(read, *args):
    """``read(*args)`` under the bound: a value, or a one-line SleuthError."""
    with bounded():
        try:
            return read(*args)
        except SleuthError as exc:
            assert "\n" not in str(exc), str(exc)
            return None


def cli_refused_or_ran(args):
    """A CLI command on hostile input: it ran (0 or 1) or refused in one line (2)."""
    with bounded():
        res = CliRunner().invoke(app, args)
    assert res.exit_code in (0, 1, 2), res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    if res.exit_code == 2:
        assert len(res.output.strip().splitlines()) == 1, res.output
    return res


# --- hostile values, put anywhere in a valid document ------------------------------------------

TRICKY_TEXT = st.sampled_from(["", "[/]", "[b]x", "a\nb", "\r", "\u2028", "\x1b[31m", "../../x"])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 40),
    st.integers(1 << 16, 1 << 80),
    st.integers(max_value=-(1 << 40)),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([28.7, 1e9, 1e12, -0.0]),
    st.text(max_size=6),
    TRICKY_TEXT,
)
VALUES = st.recursive(
    SCALARS,
    lambda kids: (
        st.lists(kids, max_size=4)
        | st.dictionaries(st.text(max_size=4) | TRICKY_TEXT, kids, max_size=3)
    ),
    max_leaves=8,
)


def _edit(doc, path, value, delete):
    """Set (or delete) ``doc[path]``; a path through something no longer a container is a no-op."""
    parent = doc
    for key in path[:-1]:
        if isinstance(parent, dict) and key in parent:
            parent = parent[key]
        elif isinstance(parent, list) and isinstance(key, int) and key < len(parent):
            parent = parent[key]
        else:
            return
    key = path[-1]
    if isinstance(parent, dict):
        if delete:
            parent.pop(key, None)
        else:
            parent[key] = value
    elif isinstance(parent, list) and isinstance(key, int) and key < len(parent):
        parent[key] = value


def mutations(base, paths, values=VALUES):
    """``base`` with one to three of ``paths`` set to hostile values or deleted."""

    @st.composite
    def build(draw):
        doc = copy.deepcopy(base)
        for path in draw(st.lists(st.sampled_from(paths), min_size=1, max_size=3)):
            _edit(doc, path, draw(values), draw(st.booleans()))
        return doc

    return build()


HEADER_PATHS = [
    ("format",),
    ("format_version",),
    ("arch",),
    ("rep_dim",),
    ("arch_kwargs",),
    ("arch_kwargs", "widths"),
    ("arch_kwargs", "widths", 2),
    ("arch_kwargs", "cifar_stem"),
    ("input_spec",),
    ("input_spec", "channels"),
    ("input_spec", "size"),
    ("input_spec", "mean"),
    ("input_spec", "std", 0),
]
HEADER_VALUES = st.one_of(
    VALUES,
    st.sampled_from(["smallresnet", "resnet18", "resnet50", "vgg"]),
    st.lists(st.integers(-1, 1 << 14) | st.sampled_from([4.0, 2.5]), max_size=4),
)
HEADERS = mutations(HEADER, HEADER_PATHS, HEADER_VALUES)


def _held(encoder) -> int:
    return sum(t.numel() for t in encoder.state_dict().values())


@FUZZ
@given(header=HEADERS)
def test_pt_encoder_headers(header):
    path = SCRATCH / "fuzz.pt"
    torch.save({**header, "state_dict": STATE}, path)
    encoder = refused_or_read(load_encoder, path)
    if encoder is not None:  # only what the file holds was built
        assert _held(encoder) == sum(t.numel() for t in STATE.values())


SAFETENSORS_METADATA = st.one_of(
    HEADERS.map(json.dumps),  # NaN and Infinity included, as Python writes them
    VALUES.map(json.dumps),
    st.text(max_size=40),
    st.integers(1, 50_000).map(lambda d: "[" * d + "]" * d),  # RecursionError in json
    st.integers(4_000, 6_000).map(lambda n: '{"rep_dim": 1' + "0" * n + "}"),  # digit limit
)


@FUZZ
@given(
    meta=st.dictionaries(
        st.sampled_from(["sleuth", "format", "other"]) | st.text(max_size=5),
        SAFETENSORS_METADATA,
        max_size=3,
    )
)
def test_safetensors_metadata(meta):
    path = SCRATCH / "fuzz.safetensors"
    save_file(STATE, str(path), metadata=meta)
    encoder = refused_or_read(load_encoder, path)
    if encoder is not None:
        assert _held(encoder) == sum(t.numel() for t in STATE.values())


def test_a_header_that_fits_the_bound_but_not_the_weights_allocates_nothing(tmp_path):
    """widths [2048]*3 build within MAX_NUMBERS but are not what the file holds: refused on
    the meta device, before the 760 MB module is allocated (under a 64 MB bound here)."""
    global BOUND
    header = {**HEADER, "arch_kwargs": {"widths": [2048] * 3}}
    torch.save({**header, "state_dict": STATE}, tmp_path / "e.pt")
    old, BOUND = BOUND, 64 << 20
    try:
        with pytest.raises(SleuthError, match="has shape"):
            with bounded():
                load_encoder(tmp_path / "e.pt")
    finally:
        BOUND = old


# --- challenge keys -----------------------------------------------------------------------------


KEY_PATHS = [
    ("format",),
    ("settings",),
    ("settings", "samples"),
    ("settings", "seed"),
    ("settings", "noise_radius"),
    ("settings", "wm_samples"),
    ("settings", "evil"),
    ("roles",),
    ("roles", "private"),
    ("sources",),
    ("sources", "public"),
    ("wm_labels",),
    ("wm_labels", 0),
    ("data_fingerprint",),
]


@pytest.fixture(scope="module")
def challenge_key(cli_walk):
    return json.loads(Path(cli_walk.path("ch.key.json")).read_text())


@FUZZ
@given(data=st.data())
def test_challenge_keys(challenge_key, data):
    key = data.draw(mutations(challenge_key, KEY_PATHS))
    path = SCRATCH / "fuzz.key.json"
    path.write_text(json.dumps(key))
    refused_or_read(read_challenge_key, path)


def test_a_challenge_key_nested_100000_deep_is_one_line(tmp_path):
    (tmp_path / "k.json").write_text("[" * 100_000 + "]" * 100_000)
    refused_or_read(read_challenge_key, tmp_path / "k.json")


def test_a_challenge_key_with_a_5000_digit_number_is_one_line(tmp_path):
    (tmp_path / "k.json").write_text('{"format": "sleuth-challenge", "x": 1' + "0" * 5000 + "}")
    refused_or_read(read_challenge_key, tmp_path / "k.json")


# --- report statements --------------------------------------------------------------------------


STATEMENT_PATHS = [
    ("_type",),
    ("subject",),
    ("subject", 0),
    ("predicate",),
    ("predicate", "verdict"),
    ("predicate", "alpha"),
    ("predicate", "victims"),
    ("predicate", "victims", 0),
    ("predicate", "victims", 0, "verdict"),
    ("predicate", "victims", 0, "tests"),
    ("predicate", "victims", 0, "tests", 0),
    ("predicate", "victims", 0, "tests", 0, "name"),
    ("predicate", "victims", 0, "tests", 0, "p_value"),
    ("predicate", "victims", 0, "looks"),
    ("predicate", "inputs"),
    ("predicate", "inputs", "references"),
    ("predicate", "inputs", "settings"),
    ("predicate", "inputs", "alpha"),
    ("predicate", "inputs", "evil"),
    ("predicate", "report"),
    ("predicate", "report", "signer"),
    ("predicate", "verification"),
    ("predicate", "verification", "created"),
]


@pytest.fixture(scope="module")
def statement(cli_walk):
    return read_statement(cli_walk.path("report"))


def _envelope(statement):
    """An unsigned envelope as sleuth writes it, around any JSON (NaN too: a payload is bytes
    that only the reader parses)."""
    payload = json.dumps(statement, indent=2).encode("utf-8")
    return Envelope(payload, PAYLOAD_TYPE, {}).to_dict()


@settings(FUZZ, max_examples=30)  # two CLI runs each
@given(data=st.data())
def test_report_statements_for_show_and_rerun(statement, data):
    """An unsigned envelope in sleuth's own bytes around a hostile statement: show prints it or
    refuses it, rerun refuses it or would run (never does here: run_verify is a stand-in)."""
    hostile = data.draw(mutations(statement, STATEMENT_PATHS))
    folder = SCRATCH / "report"
    folder.mkdir(exist_ok=True)
    (folder / "verdict.json").write_text(serialise(_envelope(hostile)))
    cli_refused_or_ran(["report", "show", str(folder)])
    with pytest.MonkeyPatch.context() as mp:

        def stand_in(*_args, **_kwargs):
            raise SleuthError("the inputs passed every check: it would run")

        mp.setattr("sleuth.verify.run_verify", stand_in)
        cli_refused_or_ran(["report", "rerun", "--quiet", "--unsigned-ok", str(folder)])
