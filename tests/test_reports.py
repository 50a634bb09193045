"""Signed evidence reports: keys, DSSE/Ed25519 against published test vectors, the evidence file,
the HTML, tamper detection on every subject and on the envelope, re-runs, and refusals."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import stat
from html.parser import HTMLParser
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.dsse import Envelope
from typer.testing import CliRunner

from sleuth.cli import app
from sleuth.errors import SleuthError
from sleuth.fileio import sha256_file
from sleuth.models import load_encoder, save_encoder
from sleuth.reports import (
    Evidence,
    check_report,
    compare,
    fingerprint,
    generate_keypair,
    load_private_key,
    load_public_key,
    read_evidence,
    read_statement,
    write_evidence,
    write_report,
)
from sleuth.reports.envelope import PAYLOAD_TYPE, EnvelopeError, open_envelope, seal, serialise
from sleuth.reports.evidence import REFERENCE_SCORES
from sleuth.reports.pdf import find_browser
from sleuth.reports.plots import figure_for
from sleuth.reports.statement import PREDICATE_TYPE, STATEMENT_TYPE
from sleuth.verify import ChallengeSettings, run_verify
from sleuth.verify.evidence import TEST_INFO

SETTINGS = ChallengeSettings(samples=60, noise_points=20, noise_draws=5)

# RFC 8032 §7.1, test 1: Ed25519 of the empty message.
RFC8032_SECRET = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
RFC8032_PUBLIC = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
RFC8032_SIG = (
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555"
    "fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


# --- keys and the envelope ---------------------------------------------------------------------


def test_ed25519_and_dsse_match_their_published_vectors():
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(RFC8032_SECRET))
    public = key.public_key()
    assert fingerprint(public) == hashlib.sha256(bytes.fromhex(RFC8032_PUBLIC)).hexdigest()
    assert key.sign(b"").hex() == RFC8032_SIG
    # DSSE spec's pre-authentication encoding example
    env = Envelope(b"hello world", "http://example.com/HelloWorld", {})
    assert env.pae() == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    # our envelope: the signature is Ed25519 over PAE(payload type, exact payload bytes)
    sealed = seal({"_type": STATEMENT_TYPE, "x": 1}, key)
    payload = base64.b64decode(sealed["payload"])
    pae = b"DSSEv1 %d %b %d %b" % (len(PAYLOAD_TYPE), PAYLOAD_TYPE.encode(), len(payload), payload)
    (sig,) = sealed["signatures"]
    assert sig["keyid"] == fingerprint(public)
    assert base64.b64decode(sig["sig"]) == key.sign(pae)  # Ed25519 is deterministic
    opened = open_envelope(serialise(sealed), public)
    assert opened.statement == {"_type": STATEMENT_TYPE, "x": 1}
    assert opened.verified_by == fingerprint(public)


def test_envelope_refuses_wrong_keys_alterations_and_missing_signatures():
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    text = serialise(seal({"a": [1, 2, 3]}, key))
    with pytest.raises(EnvelopeError, match="not by the given key"):
        open_envelope(text, other.public_key())
    with pytest.raises(EnvelopeError, match="not signed"):
        open_envelope(serialise(seal({"a": 1}, None)), key.public_key())
    # a statement re-signed by nobody: payload swapped, signature kept
    forged = json.loads(text)
    forged["payload"] = base64.b64encode(b'{"a": [1, 2, 4]}').decode()
    with pytest.raises(EnvelopeError, match="does not match"):
        open_envelope(serialise(forged), key.public_key())
    with pytest.raises(EnvelopeError, match="altered"):
        open_envelope(text.replace("\n", " ", 1), key.public_key())


def test_keys_private_file_is_owner_only_and_passphrase_protected(tmp_path):
    private, public, fp = generate_keypair(tmp_path / "k", b"correct horse")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in private.read_bytes()
    assert fingerprint(load_public_key(public)) == fp
    assert fingerprint(load_private_key(private, b"correct horse").public_key()) == fp
    with pytest.raises(SleuthError, match="wrong passphrase"):
        load_private_key(private, b"wrong")
    with pytest.raises(SleuthError, match="encrypted"):
        load_private_key(private, None)
    with pytest.raises(SleuthError, match="already holds"):
        generate_keypair(tmp_path / "k")
    with pytest.raises(SleuthError, match="not a PEM public key"):
        load_public_key(private)


# --- a real verification, reported -------------------------------------------------------------


@pytest.fixture(scope="module")
def case(zoo, tmp_path_factory):
    """A private copy of the victim and references (tamper tests alter them), a slightly
    perturbed copy of the victim as suspect, one verification, and a signing key."""
    root = tmp_path_factory.mktemp("case")
    for name in ("victim", "ref1", "ref2", "ref3", "ref4"):
        shutil.copytree(zoo / name, root / name)
    refs = [str(root / f"ref{i}") for i in (1, 2, 3, 4)]
    suspect = load_encoder(root / "victim" / "encoder.pt")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in suspect.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.01 * p.abs().mean())
    save_encoder(suspect, root / "suspect.pt")
    result = run_verify(
        [str(root / "victim")], suspect=str(root / "suspect.pt"), references=refs, settings=SETTINGS
    )
    private, public, _ = generate_keypair(root / "keys")
    return {"root": root, "result": result, "key": private, "pub": public}


def _report(case, out: Path, **kw):
    key = load_private_key(case["key"])
    return write_report(Evidence.from_result(case["result"]), out, private_key=key, **kw)


def test_evidence_round_trip_is_exact_and_described(case, tmp_path):
    evidence = Evidence.from_result(case["result"])
    a = write_evidence(evidence, tmp_path / "a.h5")
    b = write_evidence(Evidence.from_result(case["result"]), tmp_path / "b.h5")
    assert sha256_file(a) == sha256_file(b)  # no timestamps: same result, same bytes
    back = read_evidence(a)
    assert back.result == json.loads(json.dumps(evidence.result))
    assert back.arrays.keys() == evidence.arrays.keys()
    for key, arrays in evidence.arrays.items():
        for name, values in arrays.items():
            assert np.array_equal(
                back.arrays[key][name], values.astype(back.arrays[key][name].dtype)
            )
    with h5py.File(a) as f:
        names = []
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        assert names, "no arrays written"
        for name in names:
            test, array = name.split("/")[-2:]
            meaning = REFERENCE_SCORES if array == "reference_scores" else None
            assert f[name].attrs["description"] == meaning or TEST_INFO[test].arrays[array]
            assert f[name].compression == "gzip"
    assert any("correct" in arrays for arrays in evidence.arrays.values())
    with pytest.raises(SleuthError, match="not a sleuth evidence file"):
        with h5py.File(tmp_path / "other.h5", "w") as f:
            f["x"] = [1]
        read_evidence(tmp_path / "other.h5")


def test_statement_names_every_input_and_evidence_file(case, tmp_path):
    written = _report(case, tmp_path / "r", pdf=False)
    statement = read_statement(written.out_dir)
    assert statement["_type"] == STATEMENT_TYPE and statement["predicateType"] == PREDICATE_TYPE
    roles = [s["annotations"]["role"] for s in statement["subject"]]
    assert roles.count("victim") == roles.count("owner-key") == roles.count("suspect") == 1
    assert roles.count("reference") == 4
    assert {s["name"] for s in statement["subject"] if s["annotations"]["role"] == "evidence"} == {
        "evidence.h5",
        "report.html",
    }
    for s in statement["subject"]:
        path = (
            written.out_dir / s["name"]
            if s["annotations"]["role"] == "evidence"
            else Path(s["name"])
        )
        assert sha256_file(path) == s["digest"]["sha256"]
    p = statement["predicate"]
    assert p["verdict"] == case["result"].verdict == "stolen"
    assert p["alpha"] == 0.01 and "Holm" in p["decision_rule"]
    assert p["seeds"]["challenge"] == SETTINGS.seed
    assert p["report"]["signer"] == written.signer
    assert {"sleuth", "torch", "python"} <= set(p["verification"]["environment"])
    test = p["victims"][0]["tests"][0]
    assert {"p_value", "p_adjusted", "statistic", "rejected"} <= set(test)


class _ReportParser(HTMLParser):
    """Collects the verdict, the rows of the test table and the embedded plots."""

    def __init__(self):
        super().__init__()
        self.verdict, self.rows, self.plots = None, [], {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section" and "data-verdict" in a:
            self.verdict = a["data-verdict"]
        if tag == "tr" and "data-test" in a:
            self.rows.append(a["data-test"])
        if tag == "img" and a.get("alt", "").startswith("plot: "):
            self.plots[a["alt"][6:]] = a["src"]


def test_html_has_verdict_every_test_row_and_every_plot(case, tmp_path):
    written = _report(case, tmp_path / "r", pdf=False)
    page = (written.out_dir / "report.html").read_text()
    parser = _ReportParser()
    parser.feed(page)
    tests = case["result"].victims[0].decisions
    assert parser.verdict == "stolen"
    assert parser.rows == [d.result.name for d in tests]
    for d in tests:
        if d.result.valid:
            src = parser.plots[d.result.name]
            assert src.startswith("data:image/png;base64,")
            assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "http" not in "".join(parser.plots.values())  # self-contained
    for s in read_statement(written.out_dir)["subject"]:
        if s["name"] != "report.html":
            assert s["digest"]["sha256"] in page


@pytest.mark.parametrize("k", [0, 37, 40])
def test_watermark_plot_draws_every_accuracy_including_all_and_none_correct(k):
    test = {"name": "watermark-binomial", "effect": k / 40 - 0.5, "score": k / 40, "direction": 1}
    arrays = {"correct": np.arange(40) < k, "reference_scores": np.array([0.5, 0.48, 0.52])}
    assert figure_for(test, arrays)[:8] == b"\x89PNG\r\n\x1a\n"


def _flip(path: Path, offset: int) -> bytes:
    data = path.read_bytes()
    changed = bytearray(data)
    changed[offset % len(data)] ^= 0xFF
    path.write_bytes(bytes(changed))
    return data


def test_check_passes_untouched_and_names_every_tampered_file(case, tmp_path):
    written = _report(case, tmp_path / "r", pdf=False)
    pub = load_public_key(case["pub"])
    ok = check_report(written.out_dir, pub)
    assert ok.ok and ok.signature == "valid" and not ok.problems
    assert all(s["status"] == "ok" for s in ok.subjects)
    statement = read_statement(written.out_dir)
    for s in statement["subject"]:
        inside = s["annotations"]["role"] == "evidence"
        path = written.out_dir / s["name"] if inside else Path(s["name"])
        for offset in (0, path.stat().st_size // 2, -1):
            original = _flip(path, offset)
            try:
                res = check_report(written.out_dir, pub)
            finally:
                path.write_bytes(original)
            assert not res.ok
            assert len(res.problems) == 1 and s["name"] in res.problems[0], res.problems
            assert "changed" in res.problems[0]
    envelope = written.out_dir / "verdict.json"
    size = envelope.stat().st_size
    for offset in [0, 1, 5, 40, size // 3, size // 2, size - 200, size - 30, size - 2, size - 1]:
        original = _flip(envelope, offset)
        try:
            res = check_report(written.out_dir, pub)
        finally:
            envelope.write_bytes(original)
        assert not res.ok and res.problems[0].startswith("verdict.json"), offset
    other = generate_keypair(tmp_path / "other")[1]
    wrong = check_report(written.out_dir, load_public_key(other))
    assert not wrong.ok and "not by the given key" in wrong.problems[0]
    assert check_report(written.out_dir, pub).ok


def test_missing_inputs_are_warned_not_failed_unless_strict(case, tmp_path):
    written = _report(case, tmp_path / "r", pdf=False)
    pub = load_public_key(case["pub"])
    ref = case["root"] / "ref4" / "encoder.pt"
    moved = ref.rename(ref.with_suffix(".moved"))
    try:
        lenient, strict = (
            check_report(written.out_dir, pub),
            check_report(written.out_dir, pub, strict=True),
        )
    finally:
        moved.rename(ref)
    assert lenient.ok and any("not re-hashed" in w for w in lenient.warnings)
    assert not strict.ok and str(ref) in strict.problems[0]
    (written.out_dir / "evidence.h5").unlink()
    gone = check_report(written.out_dir, pub)
    assert not gone.ok and gone.problems == ["evidence.h5: missing"]


def test_reports_are_atomic_and_refuse_a_non_empty_folder(case, tmp_path, monkeypatch):
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(SleuthError, match="not empty"):
        _report(case, target, pdf=False)
    assert [p.name for p in target.iterdir()] == ["keep.txt"]

    def broken(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr("sleuth.reports.make.render_html", broken)
    with pytest.raises(RuntimeError):
        _report(case, tmp_path / "new", pdf=False)
    assert list(tmp_path.iterdir()) == [target]  # neither the report nor its temporary folder


@pytest.mark.skipif(find_browser() is None, reason="no Chromium installed to print the PDF")
def test_pdf_is_printed_and_signed_when_chromium_is_installed(case, tmp_path):
    written = _report(case, tmp_path / "r", pdf=True)
    pdf = written.out_dir / "report.pdf"
    assert written.pdf and pdf.read_bytes()[:5] == b"%PDF-"
    assert "report.pdf" in {s["name"] for s in read_statement(written.out_dir)["subject"]}
    original = _flip(pdf, 100)
    assert "report.pdf" in check_report(written.out_dir, load_public_key(case["pub"])).problems[0]
    pdf.write_bytes(original)


def test_compare_finds_changed_verdicts_and_statistics(case):
    recorded = json.loads(case["result"].to_json())
    assert compare(recorded, json.loads(json.dumps(recorded))).reproduced
    nudged = json.loads(json.dumps(recorded))
    nudged["victims"][0]["tests"][0]["statistic"] *= 1 + 1e-9
    assert compare(recorded, nudged).reproduced  # within rtol 1e-6
    nudged["victims"][0]["tests"][0]["p_value"] *= 1.01
    rep = compare(recorded, nudged)
    assert not rep.reproduced and rep.verdict_reproduced and "p_value" in rep.differences[0]
    flipped = json.loads(json.dumps(recorded))
    flipped["victims"][0]["verdict"] = "not_stolen"
    flipped["suspect_digest"] = "0" * 64
    rep = compare(recorded, flipped)
    assert not rep.verdict_reproduced and not rep.inputs_unchanged


# --- the command line --------------------------------------------------------------------------


def test_cli_keys_verify_report_check_show_rerun(case, tmp_path):
    runner = CliRunner()
    root = case["root"]
    res = runner.invoke(app, ["keys", "init", "--out", str(tmp_path / "k")])
    assert res.exit_code == 0 and "fingerprint: " in res.stdout
    fp = res.stdout.split("fingerprint: ")[1].split()[0]
    key, pub = tmp_path / "k" / "sleuth-signing.key", tmp_path / "k" / "sleuth-signing.pub"
    assert fp == fingerprint(load_public_key(pub))
    args = ["verify", str(root / "suspect.pt"), "--victim", str(root / "victim"), "--samples", "60"]
    for i in (1, 2, 3, 4):
        args += ["--reference", str(root / f"ref{i}")]
    rep_dir = tmp_path / "rep"
    res = runner.invoke(
        app,
        args
        + [
            "--quiet",
            "--no-pdf",
            "--report",
            str(rep_dir),
            "--sign-key",
            str(key),
            "--save",
            str(tmp_path / "saved.h5"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in rep_dir.iterdir()) == [
        "evidence.h5",
        "report.html",
        "verdict.json",
    ]
    res = runner.invoke(app, ["report", "check", str(rep_dir), "--pub", str(pub)])
    assert res.exit_code == 0 and "OK signature valid" in res.stdout
    res = runner.invoke(app, ["report", "show", str(rep_dir)])
    assert (
        res.exit_code == 0 and "verdict: stolen" in res.stdout and "overall: stolen" in res.stdout
    )
    assert f"claimed signer {fp}, not checked" in " ".join(res.stdout.split())  # no --pub
    res = runner.invoke(app, ["report", "show", str(rep_dir), "--pub", str(pub)])
    assert res.exit_code == 0 and f"signature checked: signed by {fp}" in " ".join(
        res.stdout.split()
    )
    res = runner.invoke(
        app, ["report", "rerun", str(rep_dir), "--quiet", "--json", "--pub", str(pub)]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["reproduced"] is True
    # a report made later from the saved result checks too
    res = runner.invoke(
        app,
        [
            "report",
            "make",
            str(tmp_path / "saved.h5"),
            "--out",
            str(tmp_path / "rep2"),
            "--sign-key",
            str(key),
            "--no-pdf",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    made = json.loads(res.stdout)  # --json: the report's summary and nothing else on stdout
    assert made["signer"] == fp and "verdict.json" in made["files"]
    assert (
        runner.invoke(app, ["report", "check", str(tmp_path / "rep2"), "--pub", str(pub)]).exit_code
        == 0
    )
    original = _flip(rep_dir / "evidence.h5", 500)
    res = runner.invoke(app, ["report", "check", str(rep_dir), "--pub", str(pub)])
    shown = runner.invoke(app, ["report", "show", str(rep_dir), "--pub", str(pub)])
    (rep_dir / "evidence.h5").write_bytes(original)
    assert res.exit_code == 1 and "FAIL evidence.h5" in res.stdout
    assert shown.exit_code == 1 and "overall" not in shown.stdout


def test_cli_bad_inputs_are_one_line_and_exit_2(case, tmp_path):
    runner = CliRunner()
    root = case["root"]
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    cases = [
        (["report", "check", str(tmp_path), "--pub", str(case["pub"])], "not a sleuth report"),
        (
            ["report", "check", str(tmp_path), "--pub", str(tmp_path / "nope.pub")],
            "cannot read public key",
        ),
        (
            ["report", "make", str(case["pub"]), "--out", str(tmp_path / "r")],
            "cannot read evidence",
        ),
        (
            [
                "verify",
                str(root / "victim"),
                "--victim",
                str(root / "victim"),
                "--report",
                str(busy),
            ],
            "not empty",
        ),
        (
            [
                "verify",
                str(root / "victim"),
                "--victim",
                str(root / "victim"),
                "--sign-key",
                str(case["pub"]),
            ],
            "cannot load signing key",
        ),
    ]
    for argv, message in cases:
        res = runner.invoke(app, argv)
        assert res.exit_code == 2, (argv, res.output)
        assert message in res.output and "Traceback" not in res.output
    assert not (tmp_path / "r").exists() and [p.name for p in busy.iterdir()] == ["x"]


def test_cli_encrypted_key_signs_with_the_passphrase_from_the_environment(case, tmp_path):
    runner = CliRunner()
    env = {"SLEUTH_KEY_PASSPHRASE": "s3cret"}
    res = runner.invoke(app, ["keys", "init", "--out", str(tmp_path / "k"), "--encrypt"], env=env)
    assert res.exit_code == 0, res.output
    key = tmp_path / "k" / "sleuth-signing.key"
    assert b"ENCRYPTED PRIVATE KEY" in key.read_bytes()
    saved = write_evidence(Evidence.from_result(case["result"]), tmp_path / "saved.h5")
    make = ["report", "make", str(saved), "--sign-key", str(key), "--no-pdf", "--out"]
    wrong = runner.invoke(app, [*make, str(tmp_path / "bad")], env={"SLEUTH_KEY_PASSPHRASE": "no"})
    assert wrong.exit_code == 2 and "wrong passphrase" in wrong.output
    assert not (tmp_path / "bad").exists()
    res = runner.invoke(app, [*make, str(tmp_path / "r")], env=env)
    assert res.exit_code == 0, res.output
    pub = tmp_path / "k" / "sleuth-signing.pub"
    assert check_report(tmp_path / "r", load_public_key(pub)).ok


def test_black_box_report_names_the_answers_and_the_challenge_key(case, tmp_path):
    from sleuth.models import load_owner_key
    from sleuth.verify import build_challenge, export_challenge

    root = case["root"]
    ch = build_challenge(load_owner_key(root / "victim" / "owner-key.pt"), SETTINGS)
    _, key_path = export_challenge(ch, tmp_path / "challenge.h5")
    with h5py.File(tmp_path / "answers.h5", "w") as f:
        f["answers"] = load_encoder(root / "suspect.pt").represent(ch.images).numpy()
    result = run_verify(
        [str(root / "victim")],
        suspect_reps=str(tmp_path / "answers.h5"),
        challenge_key=str(key_path),
        references=[str(root / f"ref{i}") for i in (1, 2, 3, 4)],
    )
    key = load_private_key(case["key"])
    written = write_report(Evidence.from_result(result), tmp_path / "r", private_key=key, pdf=False)
    check = check_report(written.out_dir, load_public_key(case["pub"]))
    roles = {s["role"]: s["name"] for s in check.subjects}
    assert check.ok and roles["suspect-answers"] == str(tmp_path / "answers.h5")
    assert roles["challenge-key"] == str(key_path.resolve())
    original = _flip(tmp_path / "answers.h5", 100)
    assert "answers.h5" in check_report(written.out_dir, load_public_key(case["pub"])).problems[0]
    (tmp_path / "answers.h5").write_bytes(original)


@pytest.mark.parametrize(
    "edit",
    [
        lambda s: [1, 2],  # a payload that is a list
        lambda s: {**s, "predicate": {**s["predicate"], "victims": None}},
        lambda s: {**s, "predicate": {k: v for k, v in s["predicate"].items() if k != "inputs"}},
        lambda s: {
            **s,
            "predicate": {**s["predicate"], "inputs": {**s["predicate"]["inputs"], "evil": 1}},
        },
        lambda s: {
            **s,
            "predicate": {**s["predicate"], "inputs": {**s["predicate"]["inputs"], "alpha": "0.5"}},
        },
        lambda s: {**s, "predicate": {**s["predicate"], "report": []}},
    ],
)
def test_hostile_statements_are_one_line_for_show_and_rerun(case, tmp_path, edit):
    """H: a statement's fields are hostile input. An unsigned envelope in sleuth's own bytes whose
    payload is a list, lacks victims or inputs, carries an unknown input or a mistyped one is
    refused by show and rerun with exit 2 and one line, never splatted into run_verify."""
    from sleuth.reports.envelope import seal, serialise

    written = _report(case, tmp_path / "r", pdf=False)
    statement = read_statement(written.out_dir)
    hostile = edit(statement)
    (written.out_dir / "verdict.json").write_text(serialise(seal(hostile, None)))
    runner = CliRunner()
    rep_dir = written.out_dir
    shown = runner.invoke(app, ["report", "show", str(rep_dir)])
    rerun = runner.invoke(app, ["report", "rerun", "--quiet", "--unsigned-ok", str(rep_dir)])
    assert rerun.exit_code == 2 and len(rerun.output.strip().splitlines()) == 1, rerun.output
    assert shown.exit_code in (0, 2) and "Traceback" not in shown.output  # show reads no inputs
    if shown.exit_code == 2:
        assert len(shown.output.strip().splitlines()) == 1, shown.output
