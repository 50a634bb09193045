"""Stealing: the strict query budget, the answer cache, the three kinds of oracle, the attacks."""

import io
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sleuth.cli import app
from sleuth.data import input_spec_for, load_images, to_float
from sleuth.data.answers import AnswerStore, query_keys
from sleuth.embed import EmbedConfig, run_embed
from sleuth.errors import SleuthError
from sleuth.models import Encoder, encoder_config, load_encoder
from sleuth.steal import StealConfig, attacker_init_seed, run_steal
from sleuth.steal.oracle import (
    BudgetExceeded,
    HTTPOracle,
    LocalOracle,
    MeteredOracle,
    PrecomputedOracle,
)


@pytest.fixture(scope="module")
def victim(tmp_path_factory, make_images):
    """A tiny watermarked victim folder trained on synthetic data, and its data spec."""
    root = tmp_path_factory.mktemp("victim")
    x, y = make_images(n=120)
    np.savez(root / "data.npz", x=x, y=y)
    spec = f"npz:{root / 'data.npz'}"
    cfg = EmbedConfig(data=spec, epochs=1, batch_size=16, rep_dim=16, wm_fraction=0.5)
    run_embed(cfg, root / "v", device="cpu")
    return root / "v", spec


def _cfg(spec, **kw):
    return StealConfig(**{"data": spec, "queries": 40, "epochs": 2, "batch_size": 16, **kw})


@dataclass
class CountingOracle:
    """Wraps an oracle and records every image that reaches it."""

    inner: object
    seen: list = field(default_factory=list)

    def __post_init__(self):
        self.rep_dim, self.digest = self.inner.rep_dim, self.inner.digest

    def answer(self, images):
        self.seen.append(len(images))
        return self.inner.answer(images)


def _local(victim_dir):
    return LocalOracle(load_encoder(victim_dir / "encoder.pt"), "victim-digest")


def test_budget_is_strict_and_nothing_is_sent_past_it(victim):
    counting = CountingOracle(_local(victim[0]))
    meter = MeteredOracle(counting, budget=10)
    meter.query(torch.rand(6, 1, 16, 16))
    with pytest.raises(BudgetExceeded, match="budget of 10"):
        meter.query(torch.rand(5, 1, 16, 16))
    assert meter.used == 6 and sum(counting.seen) == 6


@pytest.mark.parametrize(
    "method,loss,expected",
    [
        ("direct", "mse", 41),
        ("direct", "barlow", 40),
        ("stolenencoder", "mse", 41),
        ("recreate-head", "infonce", 40),
    ],
)
def test_attacks_spend_within_budget_counting_augmented_views(
    victim, tmp_path, method, loss, expected
):
    victim_dir, spec = victim
    result = run_steal(
        _cfg(spec, queries=41, method=method, loss=loss),
        str(victim_dir),
        tmp_path / "s",
        device="cpu",
    )
    assert result.queries_used == expected == result.queries_sent
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["details"]["queries_used"] == expected
    assert manifest["details"]["queries_budget"] == 41


def test_stolen_copy_follows_the_victims_size_and_learns(victim, tmp_path):
    victim_dir, spec = victim
    result = run_steal(_cfg(spec, epochs=6, lr=3e-3), str(victim_dir), tmp_path / "s", device="cpu")
    history = result.metrics["loss_history"]
    assert history[-1] < history[0]
    stolen = load_encoder(tmp_path / "s" / "encoder.pt")
    assert stolen.rep_dim == load_encoder(victim_dir / "encoder.pt").rep_dim == 16


def test_a_thief_with_the_victims_seed_does_not_start_from_the_victims_weights(victim, tmp_path):
    """`sleuth embed --seed 0` and `sleuth steal --seed 0` must not share initial weights: a copy
    that began as the victim's initialisation would be closer to it than a real thief's."""
    victim_dir, spec = victim
    steps = _cfg(spec, epochs=1, lr=1e-12)  # Adam moves each weight by about lr: still the init
    run_steal(steps, str(victim_dir), tmp_path / "s", device="cpu")
    copy = load_encoder(tmp_path / "s" / "encoder.pt").state_dict()
    config = encoder_config("smallresnet", input_spec_for(load_images(spec, "train")), 16)

    def init(seed):
        torch.manual_seed(seed)
        return Encoder(config).state_dict()

    name = next(k for k, v in copy.items() if k.endswith("weight") and v.dim() == 4)
    assert torch.allclose(copy[name], init(attacker_init_seed(0))[name], atol=1e-6)
    assert not torch.allclose(copy[name], init(0)[name], atol=1e-3)  # the victim's, seed 0


def test_cache_makes_a_rerun_query_nothing_and_repeat_exactly(victim, tmp_path):
    victim_dir, spec = victim
    cache = tmp_path / "answers.h5"
    first = run_steal(_cfg(spec), str(victim_dir), tmp_path / "a", cache=cache, device="cpu")
    second = run_steal(_cfg(spec), str(victim_dir), tmp_path / "b", cache=cache, device="cpu")
    assert first.queries_sent == 40 and first.cache_hits == 0
    assert second.queries_sent == 0 and second.cache_hits == 40 and second.queries_used == 40
    a = load_encoder(tmp_path / "a" / "encoder.pt").state_dict()
    b = load_encoder(tmp_path / "b" / "encoder.pt").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cache_of_another_victim_is_refused(victim, tmp_path):
    victim_dir, spec = victim
    store = AnswerStore("someone-else", 16)
    store.put(["k"], torch.zeros(1, 16))
    store.write(tmp_path / "c.h5")
    with pytest.raises(SleuthError, match="another victim"):
        run_steal(_cfg(spec), str(victim_dir), tmp_path / "s", cache=tmp_path / "c.h5")
    assert not (tmp_path / "s").exists()


def test_precomputed_answers_answer_exactly_their_queries(victim, tmp_path):
    victim_dir, spec = victim
    local = _local(victim_dir)
    images = to_float(load_images(spec).images[:8])
    store = AnswerStore("victim-digest")
    store.put(query_keys(images), local.answer(images))
    path = store.write(tmp_path / "pre.h5")
    oracle = PrecomputedOracle(AnswerStore.read(path), "victim-digest")
    assert torch.allclose(oracle.answer(images[2:5]), local.answer(images[2:5]))
    with pytest.raises(SleuthError, match="not in the precomputed answers"):
        oracle.answer(torch.rand(2, 1, 16, 16))


class _Handler(BaseHTTPRequestHandler):
    oracle: LocalOracle
    bad_shape = False

    def log_message(self, *args):
        pass

    def _send(self, body: bytes, ctype: str):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._send(json.dumps({"rep_dim": self.oracle.rep_dim}).encode(), "application/json")

    def do_POST(self):
        x = np.load(io.BytesIO(self.rfile.read(int(self.headers["Content-Length"]))))
        reps = self.oracle.answer(torch.from_numpy(x)).numpy()
        buf = io.BytesIO()
        np.save(buf, reps[:, :3] if self.bad_shape else reps)
        self._send(buf.getvalue(), "application/octet-stream")


@pytest.fixture
def http_victim(victim):
    handler = type("H", (_Handler,), {"oracle": _local(victim[0])})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()


def test_http_oracle_matches_the_local_victim(victim, http_victim):
    url, handler = http_victim
    images = torch.rand(5, 1, 16, 16)
    remote = HTTPOracle(url)
    assert remote.rep_dim == 16
    assert torch.allclose(remote.answer(images), _local(victim[0]).answer(images), atol=1e-6)
    handler.bad_shape = True
    with pytest.raises(SleuthError, match="expected"):
        remote.answer(images)


def test_http_steal_and_unreachable_api(victim, http_victim, tmp_path):
    url, _ = http_victim
    result = run_steal(_cfg(victim[1]), url, tmp_path / "s", device="cpu")
    assert result.queries_sent == 40
    with pytest.raises(SleuthError, match="cannot reach"):
        HTTPOracle("http://127.0.0.1:9", timeout=2)


def test_access_head_and_defended_victim(victim, tmp_path):
    victim_dir, spec = victim
    res = run_steal(
        _cfg(spec, method="access-head", loss="infonce"),
        str(victim_dir),
        tmp_path / "a",
        device="cpu",
    )
    assert load_encoder(tmp_path / "a" / "encoder.pt").rep_dim == 16 and res.queries_used == 40
    run_steal(
        _cfg(spec), str(victim_dir), tmp_path / "d", defences=["noise:sigma=0.5"], device="cpu"
    )
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["details"]["defences"][0]["name"] == "noise"


def test_bad_inputs_are_clear_errors(victim, tmp_path, make_images):
    victim_dir, spec = victim
    with pytest.raises(SleuthError, match="not found"):
        run_steal(_cfg(spec), str(tmp_path / "nope.pt"), tmp_path / "s")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage")
    with pytest.raises(SleuthError, match="not a readable"):
        run_steal(_cfg(spec), str(corrupt), tmp_path / "s")
    np.savez(tmp_path / "unlabelled.npz", x=make_images()[0])
    with pytest.raises(SleuthError, match="labelled"):
        run_steal(
            _cfg(f"npz:{tmp_path / 'unlabelled.npz'}", loss="supcon"),
            str(victim_dir),
            tmp_path / "s",
        )
    with pytest.raises(SleuthError, match="not the data"):
        run_steal(
            _cfg(f"npz:{tmp_path / 'unlabelled.npz'}", public_split=True),
            str(victim_dir),
            tmp_path / "s",
        )
    assert not (tmp_path / "s").exists()


def test_public_split_queries_only_public_images(victim, tmp_path):
    victim_dir, spec = victim
    res = run_steal(
        _cfg(spec, public_split=True, queries=1000), str(victim_dir), tmp_path / "s", device="cpu"
    )
    key = torch.load(victim_dir / "owner-key.pt", weights_only=True)
    assert res.queries_used == len(key["split"]["public"])


def test_cli_steal(victim, tmp_path):
    victim_dir, spec = victim
    runner = CliRunner()
    args = [
        "steal",
        "--victim",
        str(victim_dir),
        "--data",
        spec,
        "--queries",
        "40",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--device",
        "cpu",
        "--json",
    ]
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "s"), "--task", spec])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["queries_used"] == 40 and 0 <= summary["SA"] <= 1 and "TA" in summary
    bad = runner.invoke(app, [*args, "--out", str(tmp_path / "t"), "--loss", "nope"])
    assert bad.exit_code == 2 and "mse" in bad.output and not (tmp_path / "t").exists()


def test_rotation_invariant_thief_rotates_its_own_views_only(victim, tmp_path):
    victim_dir, spec = victim
    res = run_steal(
        _cfg(spec, method="stolenencoder", rotate=True),
        str(victim_dir),
        tmp_path / "r",
        device="cpu",
    )
    assert res.queries_used == res.queries_sent == 40
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["details"]["config"]["rotate"] is True


def test_augmented_queries_send_views_not_images(victim, tmp_path):
    """000 Table 17's Standard: a one-view loss queries one augmented view per image, so the
    victim sees no image of the surrogate set as it is; the budget is spent exactly as before."""
    victim_dir, spec = victim
    sent = []
    real = LocalOracle.answer

    def spy(self, images):
        sent.append(images.clone())
        return real(self, images)

    surrogate = to_float(load_images(spec, "train").images)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(LocalOracle, "answer", spy)
        res = run_steal(
            _cfg(spec, augment_queries=True), str(victim_dir), tmp_path / "a", device="cpu"
        )
    assert res.queries_used == 40
    queried = torch.cat(sent)
    flat = surrogate.flatten(1)
    # no query equals any surrogate image (an augmented view differs from its source)
    dists = torch.cdist(queried.flatten(1), flat).min(dim=1).values
    assert (dists > 1e-3).all()
    with pytest.raises(SleuthError, match="one-view"):
        run_steal(_cfg(spec, loss="barlow", augment_queries=True), str(victim_dir), tmp_path / "b")
    with pytest.raises(SleuthError, match="augment_queries"):
        StealConfig(method="stolenencoder", augment_queries=True)


def test_query_aug_pays_one_query_per_view_per_epoch(victim, tmp_path):
    """002's StolenEncoder-query-aug: 1 + epochs queries per surrogate image, all within budget."""
    victim_dir, spec = victim
    cfg = _cfg(spec, method="stolenencoder", query_aug=True, queries=100, epochs=3)
    res = run_steal(cfg, str(victim_dir), tmp_path / "q", device="cpu")
    # 100 // (1 + 3) = 25 images: 25 raw queries, then one batch of 16 views per epoch
    # (the trailing partial batch is dropped, as in every attack)
    assert res.queries_used == res.queries_sent == 25 + 3 * 16
    plain = run_steal(
        _cfg(spec, method="stolenencoder", queries=60, epochs=3), str(victim_dir), tmp_path / "p"
    )
    assert plain.queries_used == 60  # without query-aug: one query per image, 60 images
    with pytest.raises(SleuthError, match="query_aug"):
        StealConfig(method="direct", query_aug=True)
