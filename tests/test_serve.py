"""sleuth serve in process: the protocol, accounts, limits, per-user defences, and what must never
happen (another user's state visible, a key in the logs, a refused request counted)."""

import io
import json
import logging
import threading

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from sleuth.data import InputSpec, load_images, to_float
from sleuth.errors import SleuthError
from sleuth.models import Encoder, encoder_config, save_encoder
from sleuth.serve.app import create_app
from sleuth.serve.config import ServeConfig
from sleuth.serve.store import Store
from sleuth.steal.pow import PROOF_HEADER, solve


@pytest.fixture(scope="module")
def encoder_file(tmp_path_factory):
    torch.manual_seed(0)
    encoder = Encoder(encoder_config("smallresnet", InputSpec(1, 16, (0.5,), (0.5,)), 8))
    return str(save_encoder(encoder, tmp_path_factory.mktemp("enc") / "encoder.pt"))


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    """Every test runs on the embedded default and on a real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'serve.db'}"
    return request.getfixturevalue("postgres").database()


def npy(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()


def images(n=4, side=16, seed=0):
    return np.random.default_rng(seed).random((n, 1, side, side), dtype=np.float32)


def serve(encoder_file, db, *defences, **limits):
    store = Store(db)
    cfg = ServeConfig(encoder=encoder_file, defences=defences, db=db, **limits)
    return TestClient(create_app(cfg, store)), store


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def represent(client, key, x, path="/represent", **headers):
    return client.post(path, content=npy(x), headers={**bearer(key), **headers})


def test_the_protocol_steal_speaks(encoder_file, db):
    """GET /info gives rep_dim; POST /represent answers float32 (N, rep_dim), the encoder's own
    representations when undefended; /v1 aliases the same; /health needs no key."""
    client, store = serve(encoder_file, db)
    key = store.add_user("alice")
    info = client.get("/info", headers=bearer(key)).json()
    assert info["rep_dim"] == 8 and info["user"] == "alice"
    x = images()
    for path in ("/represent", "/v1/represent"):
        r = represent(client, key, x, path)
        assert r.status_code == 200 and r.headers["content-type"] == "application/x-npy"
        answer = np.load(io.BytesIO(r.content), allow_pickle=False)
        assert answer.dtype == np.float32 and answer.shape == (4, 8)
    expected = client.app.state.service.encoder.represent(torch.from_numpy(x)).numpy()
    assert np.allclose(answer, expected, atol=1e-6)
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/v1/health").status_code == 200
    assert "/represent" in client.get("/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize("auth", [None, "Bearer nope", "Bearer sk-0000-wrong", "Basic xyz"])
def test_no_key_or_a_wrong_key_is_401(encoder_file, db, auth):
    client, store = serve(encoder_file, db)
    store.add_user("alice")
    headers = {"Authorization": auth} if auth else {}
    for r in (
        client.get("/info", headers=headers),
        client.post("/represent", content=npy(images()), headers=headers),
    ):
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


def test_a_revoked_key_is_401_at_once(encoder_file, db):
    client, store = serve(encoder_file, db)
    key = store.add_user("alice")
    assert represent(client, key, images()).status_code == 200
    store.revoke("alice")
    assert represent(client, key, images()).status_code == 401
    with pytest.raises(SleuthError, match="no active user"):
        store.revoke("alice")


def test_keys_are_stored_only_as_hashes(encoder_file, db):
    store = Store(db)
    key = store.add_user("alice")
    secret = key.split("-", 2)[2]
    with store.engine.connect() as conn:
        dump = " ".join(str(v) for row in conn.exec_driver_sql("SELECT * FROM users") for v in row)
    assert secret not in dump and key not in dump
    with pytest.raises(SleuthError, match="already exists"):
        store.add_user("alice")


BAD_BODIES = {
    "not npy": (b"GIF89a....", 415),
    "pickle": (b"\x80\x04\x95", 415),
    "truncated npy": (npy(images())[:90], 415),
    "integers": (npy(np.zeros((2, 1, 16, 16), dtype=np.int64)), 422),
    "3-d": (npy(np.zeros((2, 16, 16), dtype=np.float32)), 422),
    "4 channels": (npy(np.zeros((2, 4, 16, 16), dtype=np.float32)), 422),
    "empty batch": (npy(np.zeros((0, 1, 16, 16), dtype=np.float32)), 422),
    "too many": (npy(np.zeros((9, 1, 16, 16), dtype=np.float32)), 422),
    "too wide": (npy(np.zeros((1, 1, 16, 40), dtype=np.float32)), 422),
    "nan": (npy(np.full((1, 1, 16, 16), np.nan, dtype=np.float32)), 422),
    "inf": (npy(np.full((1, 1, 16, 16), np.inf, dtype=np.float32)), 422),
    "out of range": (npy(np.full((1, 1, 16, 16), 2.0, dtype=np.float32)), 422),
    "object array": (b"", 415),  # filled below: an .npy that only a pickle can read
}
_pickled = io.BytesIO()
np.save(_pickled, np.array([None, 1], dtype=object), allow_pickle=True)
BAD_BODIES["object array"] = (_pickled.getvalue(), 415)


@pytest.mark.parametrize("name", list(BAD_BODIES))
def test_bad_bodies_are_4xx_and_count_nothing(encoder_file, db, name):
    """Malformed, wrong-shape, non-finite or out-of-range input gets a 4xx with a message, is
    not counted, and the server answers the next request."""
    client, store = serve(encoder_file, db, max_batch=8, max_side=32)
    key = store.add_user("alice")
    body, status = BAD_BODIES[name]
    r = client.post("/represent", content=body, headers=bearer(key))
    assert r.status_code == status and r.json()["detail"]["message"]
    assert store.users_summary(4096)[0]["queries"] == 0
    assert represent(client, key, images()).status_code == 200


def test_oversized_bodies_are_413(encoder_file, db):
    client, store = serve(encoder_file, db, max_batch=2, max_side=16)
    key = store.add_user("alice")
    big = npy(images(n=64))
    r = client.post("/represent", content=big, headers=bearer(key))
    assert r.status_code == 413
    streamed = client.post(
        "/represent", content=iter([big[:1000], big[1000:]]), headers=bearer(key)
    )
    assert streamed.status_code == 413
    assert represent(client, key, images(n=2)).status_code == 200


def test_quota_and_rate_limits_refuse_without_counting(encoder_file, db):
    client, store = serve(encoder_file, db)
    quota, rate = store.add_user("q", quota=10), store.add_user("r", rate=6)
    assert represent(client, quota, images(8)).status_code == 200
    over = represent(client, quota, images(4))
    assert over.status_code == 429 and "quota of 10" in over.json()["detail"]["message"]
    assert represent(client, quota, images(2)).status_code == 200
    assert represent(client, rate, images(4)).status_code == 200
    limited = represent(client, rate, images(4))
    assert limited.status_code == 429 and limited.headers["retry-after"] == "60"
    counts = {u["name"]: u["queries"] for u in store.users_summary(4096)}
    assert counts == {"q": 10, "r": 4}


def test_users_see_only_their_own_state(encoder_file, db):
    """Coverage and counts are per user; /info names the caller; only owners open /admin."""
    client, store = serve(encoder_file, db, "b4b")
    alice, bob, owner = (
        store.add_user("alice"),
        store.add_user("bob"),
        store.add_user("o", owner=True),
    )
    represent(client, alice, images(8, seed=1))
    assert client.get("/info", headers=bearer(bob)).json()["user"] == "bob"
    rows = {u["name"]: u for u in store.users_summary(4096)}
    assert rows["alice"]["queries"] == 8 and rows["alice"]["coverage"] > 0
    assert (
        rows["bob"]["queries"] == 0 and rows["bob"]["coverage"] == 0 and rows["bob"]["cost"] == {}
    )
    assert client.get("/admin", headers=bearer(alice)).status_code == 403
    assert client.get("/admin/users", headers=bearer(bob)).status_code == 403
    listed = client.get("/admin/users", headers=bearer(owner)).json()
    assert {u["name"] for u in listed} == {"alice", "bob", "o"}
    page = client.get("/admin", auth=("anyone", owner))
    assert page.status_code == 200 and "alice" in page.text and "data:image/png" in page.text


def test_the_owner_page_escapes_user_names(encoder_file, db):
    client, store = serve(encoder_file, db)
    owner = store.add_user("o", owner=True)
    evil = store.add_user("<script>alert(1)</script>")
    represent(client, evil, images())
    page = client.get("/admin", headers=bearer(owner)).text
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page


def test_owner_page_ranks_users_nearest_their_limits_first(encoder_file, db):
    client, store = serve(encoder_file, db)
    owner = store.add_user("o", owner=True)
    near, far = store.add_user("near", quota=10), store.add_user("far", quota=1000)
    represent(client, near, images(8))
    represent(client, far, images(8))
    listed = client.get("/admin/users", headers=bearer(owner)).json()
    assert [u["name"] for u in listed][:2] == ["near", "far"]
    assert listed[0]["pressure"] == pytest.approx(0.8)


def test_per_user_transforms_differ_between_users_and_survive_restarts(encoder_file, db):
    client, store = serve(encoder_file, db, "transform:kinds=affine+pad+shuffle,pad=4")
    alice, bob = store.add_user("alice"), store.add_user("bob")
    x = images()
    a1 = np.load(io.BytesIO(represent(client, alice, x).content))
    b1 = np.load(io.BytesIO(represent(client, bob, x).content))
    assert a1.shape == (4, 12) and not np.allclose(a1, b1)
    again, _ = serve(encoder_file, db, "transform:kinds=affine+pad+shuffle,pad=4")
    assert np.array_equal(a1, np.load(io.BytesIO(represent(again, alice, x).content)))


def test_b4b_charges_a_broad_user_more_than_a_narrow_one(encoder_file, db):
    """Noise grows with coverage: a user sending one repeated image stays in one bucket, a user
    sending varied images covers more buckets and is charged more (hashing centred on the
    owner's data)."""
    client, store = serve(encoder_file, db, "b4b:buckets=64,beta=0.5", buckets=64, lsh_data="demo")
    assert store.center is not None and store.center.shape == (8,)
    narrow, broad = store.add_user("narrow"), store.add_user("broad")
    varied = to_float(load_images("demo", "test").images[:32]).numpy()
    for k in range(4):
        represent(client, narrow, np.repeat(varied[:1], 8, axis=0))
        represent(client, broad, varied[8 * k : 8 * k + 8])
    rows = {u["name"]: u for u in store.users_summary(64)}
    assert rows["narrow"]["coverage"] == 1 / 64
    assert rows["broad"]["coverage"] >= 4 / 64
    assert rows["broad"]["cost"]["b4b"] > 2 * rows["narrow"]["cost"]["b4b"]


def test_the_lsh_center_is_fixed_at_the_first_start(encoder_file, db):
    store = Store(db)
    first = store.keep_center(torch.ones(8))
    assert torch.equal(Store(db).keep_center(torch.zeros(8)), first)


def test_proof_of_work_is_asked_checked_and_spent_once(encoder_file, db):
    client, store = serve(encoder_file, db, "pow:base=6,top=6")
    key = store.add_user("alice")
    x = images(4)
    asked = represent(client, key, x)
    assert asked.status_code == 428
    puzzle = asked.json()["detail"]["puzzle"]
    assert puzzle["bits"] == 8 and puzzle["header"] == PROOF_HEADER
    proof = f"{puzzle['challenge']}:{solve(puzzle['challenge'], puzzle['bits'])}"
    assert represent(client, key, x, **{PROOF_HEADER: proof}).status_code == 200
    assert represent(client, key, x, **{PROOF_HEADER: proof}).status_code == 409
    assert represent(client, key, images(2), **{PROOF_HEADER: proof}).status_code == 428
    assert represent(client, key, x, **{PROOF_HEADER: "garbage"}).status_code == 400
    row = store.users_summary(4096)[0]
    assert row["queries"] == 4 and row["cost"]["pow"] == 2.0**8


def test_a_key_never_reaches_the_logs(encoder_file, db, caplog):
    client, store = serve(encoder_file, db, "b4b")
    key = store.add_user("alice")
    with caplog.at_level(logging.DEBUG):
        represent(client, key, images())
        represent(client, key + "x", images())
        client.get("/info", headers=bearer(key))
    assert "answered 4 queries for alice" in caplog.text
    assert key.split("-", 2)[2] not in caplog.text


def test_concurrent_workers_lose_no_updates(encoder_file, db):
    """Two stores on one database (two worker processes' view, or two hosts' on PostgreSQL)
    and 8 client threads: every answered query is counted once and every batch logged."""
    apps = [serve(encoder_file, db, "b4b:buckets=64", buckets=64)[0] for _ in range(2)]
    key = Store(db).add_user("alice")
    errors = []

    def client(i):
        for j in range(6):
            r = represent(apps[i % 2], key, images(3, seed=100 * i + j))
            errors.append(r.status_code) if r.status_code != 200 else None

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    row = Store(db).users_summary(64)[0]
    assert row["queries"] == 8 * 6 * 3
    with Store(db).engine.connect() as conn:
        events = conn.exec_driver_sql("SELECT COUNT(*), MAX(total_queries) FROM events").one()
    assert tuple(events) == (48, 144)


def test_a_bad_database_url_is_one_line(tmp_path, postgres):
    with pytest.raises(SleuthError, match="cannot open database"):
        Store("nosuchdialect://x")
    with pytest.raises(SleuthError, match="cannot open database"):
        Store(f"sqlite:///{tmp_path}/missing/dir/x.db")
    with pytest.raises(SleuthError, match="cannot open database"):
        Store(f"postgresql://sleuth@127.0.0.1:{postgres.port}/no_such_database")


def test_users_commands_and_their_refusals(tmp_path, monkeypatch):
    """add prints a key once, list --json has every field the owner needs, revoke works once;
    a duplicate, an unknown user and a missing extra are one line and exit code 2."""
    from typer.testing import CliRunner

    import sleuth.serve
    from sleuth.cli import app

    run = CliRunner().invoke
    db = f"sqlite:///{tmp_path / 's.db'}"
    added = run(app, ["serve", "users", "add", "alice", "--db", db, "--quota", "5"])
    assert added.exit_code == 0 and added.stdout.startswith("sk-")
    assert Store(db).authenticate(added.stdout.strip()).name == "alice"
    listed = json.loads(run(app, ["serve", "users", "list", "--db", db, "--json"]).stdout)
    assert {"name", "queries", "coverage", "cost"} <= set(listed[0]) and listed[0]["quota"] == 5
    for args, message in (
        (["users", "add", "alice", "--db", db], "already exists"),
        (["users", "revoke", "bob", "--db", db], "no active user"),
        (["users", "add", "x", "--db", db, "--quota", "0"], "--quota must be at least 1"),
    ):
        refused = run(app, ["serve", *args])
        assert refused.exit_code == 2 and message in refused.output
        assert len(refused.output.strip().splitlines()) == 1 and "Traceback" not in refused.output
    assert run(app, ["serve", "users", "revoke", "alice", "--db", db]).exit_code == 0
    monkeypatch.setattr(sleuth.serve, "EXTRA_MODULES", ("no_such_module_here",))
    missing = run(app, ["serve", "users", "list", "--db", db])
    assert missing.exit_code == 2 and "pip install 'sleuth[serve]'" in missing.output


def test_serve_refuses_a_bad_encoder_or_defence_before_listening(encoder_file, tmp_path):
    from typer.testing import CliRunner

    from sleuth.cli import app

    db = f"sqlite:///{tmp_path / 's.db'}"
    for args, message in (
        ([str(tmp_path / "missing.pt")], "not found"),
        ([encoder_file, "--defence", "bogus"], "unknown defence"),
        ([encoder_file, "--defence", "b4b:buckets=3"], "power of two"),
        ([encoder_file, "--workers", "0"], "--workers"),
    ):
        refused = CliRunner().invoke(app, ["serve", *args, "--db", db])
        assert refused.exit_code == 2 and message in refused.output, refused.output
