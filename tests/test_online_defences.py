"""The per-user defences (B4B's coverage, cost and transformations; calibrated proof-of-work) and
the sybil attack against them, on synthetic answers with known answers."""

import hashlib
import math

import pytest
import torch

from sleuth.data import InputSpec
from sleuth.errors import SleuthError
from sleuth.models import Encoder, encoder_config
from sleuth.steal.accounts import MemoryAccount, derive_seed
from sleuth.steal.b4b import B4B, RandomHyperplaneLSH, UserTransform, b4b_sigma
from sleuth.steal.defences import answer_dim, apply_defences, parse_defence
from sleuth.steal.oracle import LocalOracle
from sleuth.steal.pow import Proof, ProofOfWork, issue, leading_zero_bits, solve, solves
from sleuth.steal.sybil import SybilOracle, fit_linear, fit_mlp

SECRET = b"s" * 32
IMAGES = torch.zeros(200, 1, 8, 8)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def reps(n: int = 200, d: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=gen(seed))


# --- cost and coverage ------------------------------------------------------------------------


def test_b4b_sigma_matches_eq1_by_hand():
    """Eq. 1 at its defaults: 0 at no coverage, alpha - lam at beta, and at c = beta/2 the
    geometric middle lam * (sqrt(alpha/lam) - 1) = 1e-6 * 999."""
    assert b4b_sigma(0.0) == 0.0
    assert b4b_sigma(0.8) == pytest.approx(1.0 - 1e-6)
    assert b4b_sigma(0.4) == pytest.approx(999e-6)
    assert b4b_sigma(0.3, lam=1e-3, alpha=5, beta=0.9) == pytest.approx(
        1e-3 * (math.exp(math.log(5 / 1e-3) * 0.3 / 0.9) - 1)
    )


def test_lsh_buckets_are_sign_patterns():
    """A row and its negation fall in complementary buckets (every sign flips), buckets stay in
    range, the same secret hashes alike, and another secret hashes otherwise."""
    lsh = RandomHyperplaneLSH(SECRET, 12)
    r = reps()
    b, neg = lsh(r), lsh(-r)
    assert ((b >= 0) & (b < 4096)).all()
    assert (b + neg == 4095).all()
    assert (RandomHyperplaneLSH(SECRET, 12)(r) == b).all()
    assert (RandomHyperplaneLSH(b"t" * 32, 12)(r) != b).mean() > 0.9


def test_lsh_keeps_near_answers_together():
    """Answers at a small angle share a bucket far more often than independent ones."""
    lsh = RandomHyperplaneLSH(SECRET, 8)
    r = reps(500)
    near = r + 0.01 * reps(500, seed=1)
    assert (lsh(r) == lsh(near)).mean() > 0.9
    assert (lsh(r) == lsh(reps(500, seed=2))).mean() < 0.05


def test_coverage_counts_distinct_buckets():
    account = MemoryAccount("u", SECRET)
    assert account.cover([1, 2, 2, 3], 8) == pytest.approx(3 / 8)
    assert account.cover([3, 7], 8) == pytest.approx(4 / 8)
    assert account.coverage(16) == 0.0


def test_b4b_noise_has_the_priced_sigma():
    """With 4 buckets and beta = 1, a batch covering every bucket is priced at sigma = alpha -
    lam: the added noise has that standard deviation and the account is charged sigma per answer."""
    defence = parse_defence("b4b:buckets=4,lam=1e-6,alpha=2,beta=1")
    account = MemoryAccount("u", SECRET)
    r = reps(4000)
    out = apply_defences([defence], r, torch.zeros(4000, 1, 8, 8), gen(), account)
    assert account.coverage(4) == 1.0
    assert (out - r).std().item() == pytest.approx(2.0, rel=0.03)
    assert account.costs["b4b"] == pytest.approx(4000 * (2 - 1e-6))


def test_b4b_is_silent_for_a_narrow_user():
    """A user whose answers sit in a few of 4096 buckets gets noise of sigma about 0."""
    account = MemoryAccount("u", SECRET)
    r = reps(1, 16).repeat(100, 1) + 1e-3 * reps(100, 16, seed=3)
    out = apply_defences([B4B()], r, IMAGES[:100], gen(), account)
    assert account.coverage(4096) < 0.01
    assert (out - r).abs().max().item() < 1e-4


def test_per_user_defences_refuse_without_an_account():
    with pytest.raises(SleuthError, match="per user"):
        apply_defences([UserTransform()], reps(), IMAGES, gen())


@pytest.mark.parametrize(
    "spec",
    [
        "b4b:buckets=1000",
        "b4b:lam=2,alpha=1",
        "b4b:beta=0",
        "transform:kinds=affine+rot",
        "transform:pad=0",
        "pow:base=10,top=5",
        "pow:top=50",
    ],
)
def test_bad_online_specs_are_refused(spec):
    with pytest.raises(SleuthError, match="bad defence spec"):
        parse_defence(spec)


# --- per-user transformations -----------------------------------------------------------------


def test_transform_is_per_user_and_stable():
    """The same user gets the same answers from a fresh instance (a restart, another worker);
    another user different ones; the size is what out_dim says."""
    r = reps()
    alice, bob = MemoryAccount("alice", SECRET), MemoryAccount("bob", SECRET)
    one = UserTransform()(r, IMAGES, gen(), alice)
    assert one.shape == (200, UserTransform().out_dim(16)) == (200, 32)
    assert torch.equal(one, UserTransform()(r, IMAGES, gen(5), MemoryAccount("alice", SECRET)))
    assert not torch.allclose(one, UserTransform()(r, IMAGES, gen(), bob))


def test_affine_pad_shuffle_loses_nothing_linear():
    """Affine, pad and shuffle are invertible affine maps: a least-squares fit from the
    transformed answers recovers the originals (what keeps a linear probe's accuracy)."""
    r = reps(300)
    out = UserTransform()(r, IMAGES, gen(), MemoryAccount("u", SECRET))
    back = fit_linear(out, r)(out)
    assert torch.allclose(back, r, atol=1e-3)


def test_binary_answers_bits():
    out = UserTransform(kinds="binary", binary=64)(
        reps(), IMAGES, gen(), MemoryAccount("u", SECRET)
    )
    assert out.shape == (200, 64) and set(out.unique().tolist()) <= {0.0, 1.0}
    assert answer_dim([UserTransform(kinds="pad+binary", pad=4, binary=64)], 16) == 64


def test_derived_seeds_depend_on_every_part():
    seeds = {
        derive_seed(SECRET, "a", "b"),
        derive_seed(SECRET, "a", "c"),
        derive_seed(b"x" * 32, "a", "b"),
        derive_seed(SECRET, "ab"),
    }
    assert len(seeds) == 4 and all(0 <= s < 2**63 for s in seeds)


# --- proof of work ----------------------------------------------------------------------------


def test_leading_zero_bits_by_hand():
    assert leading_zero_bits(bytes([0, 0, 0x1F])) == 19
    assert leading_zero_bits(bytes([0x80])) == 0
    assert leading_zero_bits(bytes(4)) == 32


def test_solve_finds_the_first_suffix():
    """The suffix solve returns works, and no smaller decimal suffix does."""
    suffix = solve("challenge", 10)
    digest = hashlib.sha256(f"challenge:{suffix}".encode()).digest()
    assert leading_zero_bits(digest) >= 10
    assert not any(solves("challenge", str(n), 10) for n in range(int(suffix)))


def test_proof_checks_every_field():
    """A proof pays only for the user, batch size and difficulty it was issued for, before it
    expires, with a suffix that solves it, under this server's signature."""
    challenge = issue(SECRET, "alice", 8, 6, expires=1000)
    proof = Proof(challenge, solve(challenge, 6))
    assert proof.problem(SECRET, "alice", 8, 6, now=999) is None
    assert "another user" in proof.problem(SECRET, "bob", 8, 6, now=999)
    assert "batch of 8" in proof.problem(SECRET, "alice", 9, 6, now=999)
    assert "expired" in proof.problem(SECRET, "alice", 8, 6, now=1001)
    assert "needs 7" in proof.problem(SECRET, "alice", 8, 7, now=999)
    assert "not issued" in proof.problem(b"x" * 32, "alice", 8, 6, now=999)
    forged = challenge.replace(".6.", ".0.", 1)
    assert "not issued" in Proof(forged, "0").problem(SECRET, "alice", 8, 0, now=999)
    bad = next(str(n) for n in range(10**6) if not solves(challenge, str(n), 6))
    assert "does not solve" in Proof(challenge, bad).problem(SECRET, "alice", 8, 6, now=999)
    with pytest.raises(ValueError):
        Proof.parse("no-suffix")
    assert Proof.parse(f"{challenge}:{proof.suffix}") == proof


def test_pow_price_grows_with_coverage_and_batch():
    """log2 of the work: log2(n) + base at no coverage, + top at beta, capped past it."""
    pow_ = ProofOfWork(base=8, top=20, beta=0.8)
    assert pow_.bits(1, 0.0) == 8
    assert pow_.bits(64, 0.0) == 14
    assert pow_.bits(64, 0.4) == 20
    assert pow_.bits(64, 0.8) == pow_.bits(64, 1.0) == 26


def test_local_pow_is_paid_by_the_attacker(tmp_path):
    """A local victim behind pow answers unchanged, charges 2**bits and counts solving time."""
    torch.manual_seed(0)
    encoder = Encoder(encoder_config("smallresnet", InputSpec(1, 16, (0.5,), (0.5,)), 8))
    plain = LocalOracle(encoder, "d")
    gated = LocalOracle(encoder, "d", [parse_defence("pow:base=4,top=4")])
    x = torch.rand(16, 1, 16, 16, generator=gen())
    assert torch.equal(gated.answer(x), plain.answer(x))
    assert gated.account.costs["pow"] == 2.0 ** (4 + 4)
    assert gated.work_s > 0


# --- the sybil attack -------------------------------------------------------------------------


def test_fit_linear_recovers_an_affine_map():
    x = reps(100, 8)
    a, b = torch.randn(8, 6, generator=gen(1)), torch.randn(6, generator=gen(2))
    assert torch.allclose(fit_linear(x, x @ a + b)(x), x @ a + b, atol=1e-4)


def test_fit_mlp_learns_what_a_linear_map_cannot():
    """On a saturating map the MLP's error is well under the linear fit's (both under var)."""
    x = reps(400, 4)
    y = torch.tanh(2 * x @ torch.randn(4, 4, generator=gen(3)))
    mlp = ((fit_mlp(x, y)(x) - y) ** 2).mean()
    linear = ((fit_linear(x, y)(x) - y) ** 2).mean()
    assert mlp < 0.5 * linear < 0.5 * y.var()


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return Encoder(encoder_config("smallresnet", InputSpec(1, 16, (0.5,), (0.5,)), 8))


def _sybils(encoder, spec, k=2):
    secret = b"server" * 6
    defences = [parse_defence(spec)]
    return [LocalOracle(encoder, "d", defences, user=f"s{i}", secret=secret) for i in range(k)]


def test_sybils_remap_affine_accounts(encoder):
    """Against affine per-user transformations a linear mapper unifies the accounts: answers
    pooled through the sybil oracle match account 0's own answers to the same images."""
    accounts = _sybils(encoder, "transform:kinds=affine")
    sybil = SybilOracle(accounts, "linear")
    sybil.calibrate(torch.rand(60, 1, 16, 16, generator=gen(1)))
    x = torch.rand(10, 1, 16, 16, generator=gen(2))
    assert sybil.remap_error < 1e-3
    assert torch.allclose(sybil.answer(x), accounts[0].answer(x), atol=1e-3)


def test_binary_transforms_resist_remapping(encoder):
    """B4B's Fig. 5: binary transformations leave a far larger remapping error than affine."""
    x = torch.rand(100, 1, 16, 16, generator=gen(1))
    errors = {}
    for spec in ("transform:kinds=affine", "transform:kinds=binary,binary=32"):
        sybil = SybilOracle(_sybils(encoder, spec), "linear")
        sybil.calibrate(x)
        errors[spec] = sybil.remap_error
    assert errors["transform:kinds=binary,binary=32"] > 10 * errors["transform:kinds=affine"]


def test_sybil_oracle_needs_two_accounts_and_calibration(encoder):
    with pytest.raises(SleuthError, match="at least 2"):
        SybilOracle(_sybils(encoder, "transform", 1))
    with pytest.raises(SleuthError, match="calibrate"):
        SybilOracle(_sybils(encoder, "transform")).answer(torch.rand(2, 1, 16, 16))


class Recorder:
    """An oracle that answers the identity of its images' means and records batch sizes."""

    def __init__(self, scale):
        self.rep_dim, self.digest, self.scale, self.sizes = 3, "r", scale, []

    def answer(self, images):
        self.sizes.append(len(images))
        return images.flatten(1)[:, :3] * self.scale


def test_each_sybil_account_sees_its_share():
    """After the overlap (sent to every account), a batch is split evenly over the K accounts
    and every answer comes back in account 0's space and in the batch's order."""
    accounts = [Recorder(1.0), Recorder(2.0), Recorder(-3.0)]
    sybil = SybilOracle(accounts)
    sybil.calibrate(torch.rand(20, 1, 2, 2, generator=gen(1)))
    x = torch.rand(30, 1, 2, 2, generator=gen(2))
    out = sybil.answer(x)
    assert [a.sizes for a in accounts] == [[20, 10]] * 3
    assert torch.allclose(out, x.flatten(1)[:, :3], atol=1e-4)
