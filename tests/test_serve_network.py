"""sleuth serve as a real process on loopback: sleuth steal attacks it over HTTP (one account and
sybils, proof-of-work solved by the client), several workers share one database, and a SIGKILL
loses no accounting."""

import io
import json
import os
import re
import subprocess
import threading
import urllib.request

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sleuth.cli import app
from sleuth.data import InputSpec
from sleuth.models import Encoder, encoder_config, save_encoder
from sleuth.reports.pdf import find_browser
from sleuth.serve.process import Server
from sleuth.serve.store import Store
from sleuth.steal import StealConfig, run_steal

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def encoder_file(tmp_path_factory):
    torch.manual_seed(0)
    encoder = Encoder(encoder_config("smallresnet", InputSpec(1, 16, (0.5,), (0.5,)), 8))
    return str(save_encoder(encoder, tmp_path_factory.mktemp("enc") / "encoder.pt"))


def steal_cfg(**kw):
    return StealConfig(**{"queries": 48, "epochs": 1, "batch_size": 16, **kw})


def users(db):
    return {u["name"]: u for u in Store(db).users_summary(4096)}


def post(url, key, n=4, seed=0):
    x = np.random.default_rng(seed).random((n, 1, 16, 16), dtype=np.float32)
    buf = io.BytesIO()
    np.save(buf, x)
    req = urllib.request.Request(
        url + "/represent", data=buf.getvalue(), headers={"Authorization": f"Bearer {key}"}
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return np.load(io.BytesIO(r.read()))


def test_steal_over_http_with_proof_of_work(encoder_file, tmp_path):
    """The attack client pays the server's puzzles; the server counts exactly what was sent."""
    db = f"sqlite:///{tmp_path / 'serve.db'}"
    added = CliRunner().invoke(app, ["serve", "users", "add", "thief", "--db", db, "--json"])
    assert added.exit_code == 0, added.output
    key = json.loads(added.stdout)["key"]
    server = Server(
        [encoder_file, "--db", db, "--defence", "transform", "--defence", "pow:base=2,top=6"],
        tmp_path / "serve.log",
    )
    try:
        result = run_steal(steal_cfg(), server.url, tmp_path / "copy", api_keys=[key])
    finally:
        server.stop()
    assert result.queries_sent == 48 and result.metrics["pow_work_s"] > 0
    row = users(db)["thief"]
    assert row["queries"] == 48 and row["cost"]["pow"] > 0
    assert key.split("-", 2)[2] not in (tmp_path / "serve.log").read_text()
    listed = CliRunner().invoke(app, ["serve", "users", "list", "--db", db, "--json"])
    assert json.loads(listed.stdout)[0]["queries"] == 48


def test_sybils_split_the_budget_over_accounts(encoder_file, tmp_path):
    """--sybils 2: the overlap goes through both accounts, the rest is split between them, and
    every query counts against the one budget."""
    db = f"sqlite:///{tmp_path / 'serve.db'}"
    store = Store(db)
    keys = [store.add_user("s0"), store.add_user("s1")]
    server = Server([encoder_file, "--db", db, "--defence", "transform"], tmp_path / "serve.log")
    try:
        cfg = steal_cfg(queries=60, sybils=2, sybil_overlap=10)
        result = run_steal(cfg, server.url, tmp_path / "copy", api_keys=keys)
    finally:
        server.stop()
    rows = users(db)
    assert result.queries_used == 60
    assert rows["s0"]["queries"] + rows["s1"]["queries"] == 60
    assert rows["s0"]["queries"] == rows["s1"]["queries"] == 30
    assert result.metrics["remap_error"] is not None


def test_workers_share_state_and_a_sigkill_loses_nothing(encoder_file, tmp_path):
    """Two uvicorn workers, 8 concurrent clients: no errors and every query counted; after a
    SIGKILL and a restart, counts and coverage are what was answered, and serving goes on."""
    db = f"sqlite:///{tmp_path / 'serve.db'}"
    key = Store(db).add_user("alice")
    args = [encoder_file, "--db", db, "--workers", "2", "--defence", "b4b"]
    server = Server(args, tmp_path / "serve.log")
    failures = []

    def client(i):
        for j in range(5):
            try:
                post(server.url, key, n=4, seed=10 * i + j)
            except OSError as exc:
                failures.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    before = users(db)["alice"]
    server.kill()
    assert failures == [] and before["queries"] == 8 * 5 * 4
    after = users(db)["alice"]
    assert (after["queries"], after["coverage"], after["cost"]) == (
        before["queries"],
        before["coverage"],
        before["cost"],
    )
    server = Server(args[:3] + args[5:], tmp_path / "serve.log")  # one worker is enough now
    try:
        post(server.url, key)
    finally:
        server.stop()
    assert users(db)["alice"]["queries"] == before["queries"] + 4


def chromium(url, profile, *extra):
    """Headless Chromium on ``url`` (the flags a closed network and root need)."""
    args = [
        find_browser(),
        "--headless",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *extra,
        url,
    ]
    if os.geteuid() == 0:
        args.insert(1, "--no-sandbox")
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def test_owner_page_in_a_real_browser(encoder_file, tmp_path, require_browser):
    """The owner's page in headless Chromium: with the owner's key (HTTP Basic, the key as
    password) it renders every account, the one nearest its quota first, and the plots; with a
    user's key or none it shows no account."""
    db = f"sqlite:///{tmp_path / 'serve.db'}"
    store = Store(db)
    owner, near, far = (
        store.add_user("owner", owner=True),
        store.add_user("near", quota=10),
        store.add_user("far"),
    )
    server = Server([encoder_file, "--db", db, "--defence", "b4b"], tmp_path / "serve.log")
    try:
        post(server.url, near, n=8)
        post(server.url, far, n=8, seed=1)
        page = f"http://127.0.0.1:{server.port}/admin"
        dom = chromium(page.replace("://", f"://owner:{owner}@"), tmp_path / "p1", "--dump-dom")
        shot = tmp_path / "admin.png"
        chromium(
            page.replace("://", f"://owner:{owner}@"),
            tmp_path / "p2",
            f"--screenshot={shot}",
            "--window-size=1280,900",
        )
        refused = chromium(page.replace("://", f"://far:{far}@"), tmp_path / "p3", "--dump-dom")
        anonymous = chromium(page, tmp_path / "p4", "--dump-dom")
    finally:
        server.stop()
    rows = re.findall(r'data-user="([^"]+)"', dom.stdout)
    assert rows[0] == "near" and set(rows) == {"near", "far", "owner"}, dom.stdout[-2000:]
    assert 'class="alert"' in dom.stdout and 'id="history"' in dom.stdout
    assert shot.stat().st_size > 20_000
    for denied in (refused, anonymous):
        assert "data-user" not in denied.stdout


def test_verify_asks_a_suspect_api_round_by_round(zoo, tmp_path):
    """`sleuth verify --suspect-url`: a suspect served by `sleuth serve` (the victim's own
    encoder: H1 holds) is found stolen in the sequential mode, and the server counted exactly
    the queries the verdict says it used, fewer than the challenge holds; the answers it gave
    are kept beside their challenge key and replay as a black-box verification."""
    db = f"sqlite:///{tmp_path / 'serve.db'}"
    key = Store(db).add_user("investigator")
    server = Server([str(zoo / "victim" / "encoder.pt"), "--db", db], tmp_path / "serve.log")
    refs = [x for r in sorted(zoo.glob("ref*")) for x in ("--reference", str(r))]
    common = ["--victim", str(zoo / "victim"), *refs, "--json", "--quiet"]
    kept = tmp_path / "answers.h5"
    try:
        asked = CliRunner().invoke(
            app,
            [
                "verify",
                "--suspect-url",
                server.url,
                "--api-key",
                key,
                "--answers-out",
                str(kept),
                "--samples",
                "120",
                "--budget",
                "300",
                *common,
            ],
        )
    finally:
        server.stop()
    assert asked.exit_code == 0, asked.output
    result = json.loads(asked.stdout)
    assert result["verdict"] == "stolen" and result["inputs"]["suspect_url"] == server.url
    assert users(db)["investigator"]["queries"] == result["queries_used"] <= 300
    replay = CliRunner().invoke(
        app,
        [
            "verify",
            "--suspect-reps",
            str(kept),
            "--challenge",
            str(tmp_path / "answers.key.json"),
            "--budget",
            "300",
            *common,
        ],
    )
    assert replay.exit_code == 0, replay.output
    assert json.loads(replay.stdout)["queries_used"] == result["queries_used"]
    refused = CliRunner().invoke(app, ["verify", "--suspect-url", server.url, *common])
    assert refused.exit_code == 2 and "--answers-out" in refused.output
