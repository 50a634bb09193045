"""Victim-side output defences: their statistics, their edge cases and their specs."""

import math
from pathlib import Path

import pytest
import torch

from sleuth.data import InputSpec, adapt
from sleuth.data.augment import SimCLRAugment
from sleuth.errors import SleuthError
from sleuth.models import Encoder, encoder_config, load_encoder, save_encoder
from sleuth.steal.defences import (
    DEFENCES,
    FeaturePoisoning,
    GaussianNoise,
    Rounding,
    SimilarQuery,
    TopK,
    apply_defences,
    defence_spec,
    make_defence,
    parse_defence,
)

SPEC = InputSpec(1, 16, (0.5,), (0.5,))
IMAGES = torch.rand(6, 1, 16, 16, generator=torch.Generator().manual_seed(0))
REPS = torch.randn(6, 8, generator=torch.Generator().manual_seed(1))


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def surrogate(tmp_path) -> str:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        encoder = Encoder(encoder_config("smallresnet", SPEC, rep_dim=8))
    return str(save_encoder(encoder, tmp_path / "surrogate.pt"))


# --- noise ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("mean", "sigma"), [(0.0, 0.5), (10.0, 2.0)])
def test_noise_has_the_requested_mean_and_std(mean, sigma):
    reps = torch.randn(400, 500, generator=gen(2))
    noise = (GaussianNoise(sigma=sigma, mean=mean)(reps, IMAGES, gen(3)) - reps).double()
    n = noise.numel()
    assert abs(noise.mean().item() - mean) < 5 * sigma / math.sqrt(n)
    # the sample std's standard error is sigma / sqrt(2n); float32 rounding of reps + noise adds
    # far less than that at these magnitudes
    assert abs(noise.std().item() - sigma) < 5 * sigma / math.sqrt(2 * n)


def test_noise_sigma_zero_is_identity_and_seed_fixes_the_draw():
    assert torch.equal(GaussianNoise(sigma=0)(REPS, IMAGES, gen()), REPS)
    noise = GaussianNoise(sigma=1.0)
    assert torch.equal(noise(REPS, IMAGES, gen(5)), noise(REPS, IMAGES, gen(5)))
    assert not torch.equal(noise(REPS, IMAGES, gen(5)), noise(REPS, IMAGES, gen(6)))


# --- top-k ----------------------------------------------------------------------------------


def test_topk_keeps_exactly_the_k_largest_magnitudes_even_with_ties():
    reps = torch.cat(
        [
            torch.randn(5, 10, generator=gen(4)),
            torch.tensor([[3.0, -3.0, 3.0, 1.0, -3.0, 0.5, 0.1, 0.2, 0.3, 0.4]]),
            torch.full((1, 10), -2.0),
        ]
    )
    for k in (1, 2, 3, 7):
        out = TopK(k=k)(reps, IMAGES, gen())
        kept = out != 0
        assert kept.sum(dim=1).tolist() == [k] * len(reps)
        assert torch.equal(out[kept], reps[kept])
        for row, mask in zip(reps.abs(), kept, strict=True):
            assert row[mask].min() >= row[~mask].max()
    by_hand = TopK(k=2)(torch.tensor([[0.1, -5.0, 2.0, 0.3]]), IMAGES, gen())
    assert torch.equal(by_hand, torch.tensor([[0.0, -5.0, 2.0, 0.0]]))


@pytest.mark.parametrize("k", [8, 9, 100])
def test_topk_with_k_at_least_d_is_refused(k):
    """k >= D would keep every feature: a defence that silently does nothing is refused."""
    with pytest.raises(SleuthError, match="would do nothing"):
        TopK(k=k)(REPS, IMAGES, gen())


# --- rounding -------------------------------------------------------------------------------


def test_rounding_matches_hand_computed_values():
    x = torch.tensor([[0.0123, -0.0167, 3.14159, -2.71828, 0.0049]])
    two = Rounding(decimals=2)(x, IMAGES, gen())
    expected = torch.tensor([[0.01, -0.02, 3.14, -2.72, 0.0]])
    torch.testing.assert_close(two, expected, rtol=0, atol=1e-7)
    zero = Rounding(decimals=0)(x, IMAGES, gen())
    assert torch.equal(zero, torch.tensor([[0.0, -0.0, 3.0, -3.0, 0.0]]))


# --- feature poisoning ----------------------------------------------------------------------


def _lp(delta: torch.Tensor, norm: str) -> torch.Tensor:
    return delta.abs().amax(dim=1) if norm == "linf" else delta.norm(dim=1)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_poison_stays_in_budget_and_reaches_the_known_optimum_without_augmentation(surrogate, norm):
    eps = 0.5
    defence = parse_defence(f"poison:surrogate={surrogate},eps={eps},norm={norm},lam=0,steps=10")
    out = defence(REPS, IMAGES, gen(7))
    delta = out - REPS
    assert (_lp(delta, norm) <= eps + 1e-5).all()
    # with lam = 0 the objective is ||u + delta|| with u = r - f_s(x): l2's maximum over the ball
    # is at eps * u / ||u||; linf's is the corner eps * sign(u), which gradient ascent from the
    # random start (|delta_i| <= 0.1 eps) reaches wherever |u_i| exceeds the start
    u = REPS - load_encoder(surrogate).represent(IMAGES)
    assert ((u + delta).norm(dim=1) > u.norm(dim=1)).all()
    if norm == "l2":
        best = u.norm(dim=1) + eps
        torch.testing.assert_close((u + delta).norm(dim=1), best, rtol=0, atol=1e-3)
        assert (torch.cosine_similarity(delta, u) > 0.99).all()
    else:
        torch.testing.assert_close(delta.abs(), torch.full_like(delta, eps), rtol=0, atol=1e-5)
        clear = u.abs() > 0.1 * eps
        assert clear.float().mean() > 0.7
        assert torch.equal(delta.sign()[clear], u.sign()[clear])


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_poison_increases_the_full_objective(surrogate, norm):
    eps, lam = 0.3, 20.0
    defence = parse_defence(f"poison:surrogate={surrogate},eps={eps},norm={norm},lam={lam}")
    out = defence(REPS, IMAGES, gen(8))
    assert (_lp(out - REPS, norm) <= eps + 1e-5).all()
    encoder = load_encoder(surrogate)
    x = adapt(IMAGES, SPEC)
    s1 = encoder.represent(x)
    s2 = encoder.represent(SimCLRAugment()(x, gen(8)))  # the documented first draw

    def objective(answers):
        return (answers - s1).norm(dim=1) + lam * (answers - s2).norm(dim=1)

    assert (objective(out) > objective(REPS) + 0.5 * eps).all()
    assert torch.equal(out, defence(REPS, IMAGES, gen(8)))


def test_poison_refuses_a_surrogate_of_another_size_and_bad_parameters(surrogate):
    defence = parse_defence(f"poison:surrogate={surrogate},eps=1")
    with pytest.raises(SleuthError, match="8-dimensional.*5-dimensional"):
        defence(torch.randn(6, 5), IMAGES, gen())
    for bad in ("eps=0", "eps=1,norm=l1", "eps=1,lam=-1", "eps=1,steps=0"):
        with pytest.raises(SleuthError, match=bad.split(",")[-1].split("=")[0]):
            parse_defence(f"poison:surrogate={surrogate},{bad}")
    with pytest.raises(SleuthError, match="not found"):
        parse_defence(f"poison:surrogate={surrogate}.missing,eps=1")


def test_make_defence_takes_a_surrogate_path_a_spec_cannot_hold(tmp_path, surrogate):
    """A spec splits on commas, so a path with one is refused there; make_defence takes values
    and checks them as a spec is checked."""
    odd = tmp_path / "a,b=c"
    odd.mkdir()
    path = str(odd / "surrogate.pt")
    Path(surrogate).rename(path)
    with pytest.raises(SleuthError, match="unknown parameter 'b'"):
        parse_defence(f"poison:surrogate={path},eps=1")
    defence = make_defence("poison", {"surrogate": path, "eps": 0.5, "steps": 2})
    assert defence.describe()["surrogate"] == path and defence.describe()["eps"] == 0.5
    assert defence(REPS, IMAGES, gen()).shape == REPS.shape
    with pytest.raises(SleuthError, match="missing eps="):
        make_defence("poison", {"surrogate": path})
    with pytest.raises(SleuthError, match="unknown parameter 'sigma'"):
        make_defence("topk", {"k": 2, "sigma": 1})
    with pytest.raises(SleuthError, match="unknown defence 'blur'"):
        make_defence("blur", {})


# --- similar queries ------------------------------------------------------------------------


def _unit(i: int, d: int = 8, scale: float = 1.0) -> torch.Tensor:
    return torch.eye(d)[i] * scale


def test_similar_flags_repeats_across_and_within_batches_and_replaces_them():
    defence = SimilarQuery(threshold=0.9, sigma=1.0, mean=100.0, history=10)
    first = torch.stack([_unit(0), _unit(1)])
    assert torch.equal(defence(first, IMAGES[:2], gen()), first)
    batch = torch.stack([_unit(0, scale=3.0), _unit(2), _unit(2) + 0.01, _unit(3)])
    out = defence(batch, IMAGES[:4], gen(1))
    assert defence.flagged == 2 and defence.seen == 6
    for i in (0, 2):  # replaced by N(100, 1): nothing of the answer is left
        assert 90 < out[i].mean() < 110 and (out[i] - 100).abs().max() < 6
    assert torch.equal(out[[1, 3]], batch[[1, 3]])


def test_similar_add_mode_adds_the_noise():
    defence = parse_defence("similar:threshold=0.9,sigma=0,mean=5,mode=add")
    reps = torch.stack([_unit(0), _unit(0, scale=2.0)])
    out = defence(reps, IMAGES[:2], gen())
    assert torch.equal(out, torch.stack([_unit(0), _unit(0, scale=2.0) + 5]))


def test_similar_history_is_a_ring_buffer_of_the_most_recent_answers():
    defence = SimilarQuery(threshold=0.9, history=2)
    # within one batch: the last e0 sees only e1 and e2, the first e0 has been pushed out
    out = defence(torch.stack([_unit(0), _unit(1), _unit(2), _unit(0)]), IMAGES[:4], gen())
    assert defence.flagged == 0 and defence.stored == 2
    assert torch.equal(defence.memory(), torch.stack([_unit(2), _unit(0)]))
    assert torch.equal(out[3], _unit(0))
    for i in (3, 4, 5):  # one at a time, wrapping around the buffer
        defence(_unit(i)[None], IMAGES[:1], gen())
    assert defence.stored == 2 and torch.equal(defence.memory(), torch.stack([_unit(4), _unit(5)]))
    defence(_unit(3)[None], IMAGES[:1], gen())
    assert defence.flagged == 0
    defence(torch.stack([_unit(5), _unit(3)]), IMAGES[:2], gen())
    assert defence.flagged == 2 and defence.seen == 10
    # history [e5, e3]: a batch [e6, e5] pushes e5 out before its second row is compared
    defence(torch.stack([_unit(6), _unit(5)]), IMAGES[:2], gen())
    assert defence.flagged == 2 and torch.equal(defence.memory(), torch.stack([_unit(6), _unit(5)]))


def test_similar_counts_false_positives_on_distinct_queries():
    defence = SimilarQuery(threshold=0.9, history=1000)
    distinct = torch.randn(200, 64, generator=gen(9))  # pairwise cosines ~ N(0, 1/64)
    for batch in distinct.split(50):
        defence(batch, IMAGES[:1].expand(len(batch), -1, -1, -1), gen())
    assert defence.flagged == 0 and defence.seen == 200
    defence(distinct[:10] * 2, IMAGES[:1].expand(10, -1, -1, -1), gen())
    assert defence.flagged == 10 and defence.flagged / defence.seen == 10 / 210


def test_similar_with_l2_distance():
    defence = parse_defence("similar:metric=l2,threshold=0.5,sigma=0,mean=-7")
    v = torch.randn(8, generator=gen(10))
    reps = torch.stack([v, v + 0.1 * _unit(0), v + 5 * _unit(1), 3 * v])
    out = defence(reps, IMAGES[:4], gen())
    assert defence.flagged == 1
    assert torch.equal(out[1], torch.full((8,), -7.0))
    assert torch.equal(out[[0, 2, 3]], reps[[0, 2, 3]])
    with pytest.raises(SleuthError, match="8 to 5"):
        defence(torch.randn(2, 5), IMAGES[:2], gen())


# --- every defence --------------------------------------------------------------------------


def _all(surrogate: str) -> list:
    return [
        parse_defence("noise:sigma=0.5,mean=1"),
        parse_defence("topk:k=3"),
        parse_defence("round:decimals=1"),
        parse_defence(f"poison:surrogate={surrogate},eps=0.5,steps=3"),
        parse_defence("similar:threshold=0.5,sigma=1,mean=3,history=4"),
    ]


def test_no_defence_modifies_its_input(surrogate):
    reps = torch.cat([REPS[:3], REPS[:3]])  # repeats, so the similar-query defence acts too
    before = reps.clone()
    for defence in _all(surrogate):
        out = defence(reps, IMAGES, gen())
        assert out.shape == reps.shape and out.dtype == torch.float32
        assert not torch.equal(out, reps), defence.name
        assert torch.equal(reps, before), defence.name


def test_apply_defences_runs_them_in_order():
    topk, shift = TopK(k=1), GaussianNoise(sigma=0, mean=1)
    assert torch.equal(apply_defences([], REPS, IMAGES, gen()), REPS)
    assert torch.equal(
        apply_defences([topk, shift], REPS, IMAGES, gen()), topk(REPS, IMAGES, gen()) + 1
    )
    assert torch.equal(
        apply_defences([shift, topk], REPS, IMAGES, gen()), topk(REPS + 1, IMAGES, gen())
    )


# --- specs ----------------------------------------------------------------------------------


def test_specs_round_trip_through_describe(surrogate):
    assert set(DEFENCES) == {
        "noise",
        "topk",
        "round",
        "poison",
        "similar",
        "b4b",
        "transform",
        "pow",
    }
    assert parse_defence(" topk : k = 10 ").describe() == {"name": "topk", "k": 10}
    assert parse_defence("noise:sigma=0.5").describe() == {"name": "noise", "sigma": 0.5, "mean": 0}
    defences = [
        *_all(surrogate),
        parse_defence("similar:metric=l2,threshold=12,sigma=20,mean=1000,history=100000"),
        parse_defence(f"poison:surrogate={surrogate},eps=0.05,norm=linf,lam=1e-05,steps=7"),
        parse_defence("b4b:buckets=256,lam=1e-4,alpha=2,beta=0.5"),
        parse_defence("transform:kinds=shuffle+binary,binary=64"),
        parse_defence("pow:base=4,top=12,beta=0.5,buckets=1024"),
    ]
    for defence in defences:
        again = parse_defence(defence_spec(defence))
        assert again.describe() == defence.describe()
        assert str(defence) == defence_spec(defence)
    poison = defences[3].describe()
    assert poison["surrogate"] == surrogate and len(poison["surrogate_sha256"]) == 64


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        ("noise:sigma=-1", "sigma"),
        ("noise:sigma=nan", "sigma"),
        ("topk:k=0", "k"),
        ("topk:k=2.5", "k"),
        ("nope", "noise.*topk.*round.*poison.*similar"),
        ("", "noise"),
        ("noise:foo=1", "'foo'.*sigma, mean"),
        ("noise", "sigma"),
        ("noise:sigma", "sigma"),
        ("noise:sigma=1,sigma=2", "sigma"),
        ("round:decimals=x", "decimals"),
        ("round:decimals=99", "decimals"),
        ("similar:threshold=0.9,metric=l1", "metric"),
        ("similar:threshold=1.5", "threshold"),
        ("similar:threshold=3,metric=l2,history=0", "history"),
        ("similar:threshold=0.9,mode=drop", "mode"),
    ],
)
def test_bad_specs_are_one_line_errors_naming_the_problem(spec, names):
    with pytest.raises(SleuthError, match=names) as info:
        parse_defence(spec)
    assert "\n" not in str(info.value)


def test_direct_construction_validates_too():
    with pytest.raises(ValueError, match="sigma"):
        GaussianNoise(sigma=-0.1)
    with pytest.raises(ValueError, match="eps"):
        FeaturePoisoning(surrogate=Encoder(encoder_config("smallresnet", SPEC, 8)), eps=-1)
    assert TopK(k="3").k == 3 and Rounding(decimals=2.0).decimals == 2
