"""Benchmark suites: what to train, steal, defend, verify and time, as data.

A suite is the matrix behind the papers' tables at one scale: a watermarked victim, independent
references of two architectures trained by the victim's recipe, stolen copies per loss and query
budget, defended victims, careful thieves, verifications of all of them, and scaling runs.
``plan`` turns a suite and a dataset into cells; the runner runs them. Adding a suite is one
entry in ``SUITES``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from sleuth.embed import EmbedConfig
from sleuth.errors import SleuthError
from sleuth.steal import StealConfig
from sleuth.steal.defences import defence_parameters, parse_defence
from sleuth.steal.evasion import OUTPUT_TRANSFORMS
from sleuth.steal.losses import get_loss

STOLENENCODER = "stolenencoder"  # the one attack label that is a method, not a direct loss


@dataclass(frozen=True)
class OtherArch:
    """The second architecture: references (and a victim to time verification with) trained by
    the victim's recipe with this trunk, projecting to the victim's representation size (what a
    model built to answer like the victim's API would do, and the hardest null for the tests
    that compare representations), for fewer epochs where it is much slower."""

    arch: str = "resnet18"
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    epochs: int = 2
    references: int = 3


@dataclass(frozen=True)
class Suite:
    """The matrix. Attacks are named by loss (direct extraction) or ``stolenencoder``."""

    name: str
    description: str
    data: str  # the default --data
    recipe: EmbedConfig  # the victim's; its data is replaced by --data
    references: int  # independent encoders by the victim's recipe, seeds 1..references
    other: OtherArch
    attack: StealConfig  # epochs, batch and learning rate of every attack
    budget: int  # queries of the main copies (000 Table 2, 17; 002 Table II; careful thieves)
    losses: tuple[str, ...]  # 000 Table 2's rows
    sweep: tuple[str, ...]  # 000 Tables 4, 7, 16, 18-20: these attacks at every budget
    budgets: tuple[int, ...]
    augmented: tuple[str, ...]  # 000 Table 17: these losses also with Standard and +Rotation
    surrogate_fractions: tuple[float, ...]  # 002 Table X: surrogate size / victim's private size
    defence_budget: int
    # (spec, attacks): victim-side defences of 000 Tables 10-11 and 002 Tables XIII-XV. In the
    # bench, poison's eps is a fraction of the victim's median answer norm and its surrogate is
    # the defender's own copy (002 §VII-C's strong defender).
    defences: tuple[tuple[str, tuple[str, ...]], ...]
    thieves: bool  # pruned, fine-tuned, rotation-invariant and other-data copies
    finetune_epochs: int
    samples: int  # verification challenge size
    fewest: tuple[int, ...]  # challenge sizes tried for the fewest that give `stolen`
    scaling_samples: tuple[int, ...]
    scaling_images: dict[str, tuple[int, ...]]  # architecture -> private-set sizes to time
    plain: bool = True  # the victim's recipe without the watermark: its cost and utility
    # independent owners who watermark their own encoder by the victim's recipe with the default
    # rotation intervals (other seeds, other splits): a null the unwatermarked references are not
    other_owners: int = 0
    # the thief's free output transformations (steal.evasion.OUTPUT_TRANSFORMS) every copy is
    # verified under, through the black-box route
    transforms: tuple[str, ...] = ()
    # ``verify --budget``: copies of at least ``sequential_copies`` queries and every
    # independent model verified in rounds
    sequential_budget: int | None = None
    sequential_copies: int = 2000

    def __post_init__(self) -> None:
        if self.references < 3:
            raise SleuthError("a suite needs at least 3 references of the victim's architecture")
        if self.budget not in self.budgets:
            raise SleuthError(f"suite {self.name}: the main budget must be one of the budgets")
        if self.other.references < 1 or self.other.arch == self.recipe.arch:
            raise SleuthError(
                f"suite {self.name}: the second architecture needs a reference and must differ "
                f"from the victim's ({self.recipe.arch})"
            )
        defended = [a for _, attacks in self.defences for a in attacks]
        for attack in (*self.losses, *self.sweep, *self.augmented, *defended):
            if attack != STOLENENCODER:
                get_loss(attack)  # an unknown name fails here, not an hour into a run
        for loss in self.augmented:
            if loss == STOLENENCODER or get_loss(loss).two_views:
                raise SleuthError(
                    f"suite {self.name}: augmented queries are for one-view direct losses, "
                    f"not {loss}"
                )
        for spec, _ in self.defences:
            _check_defence(self.name, spec)
        unknown = [t for t in self.transforms if t not in OUTPUT_TRANSFORMS]
        if unknown:
            raise SleuthError(f"suite {self.name}: unknown output transform {unknown[0]!r}")


def _check_defence(suite: str, spec: str) -> None:
    """A suite's defence spec as the bench will apply it (see ``poison_options``); the others
    are ordinary specs."""
    if spec.partition(":")[0] == "poison":
        poison_options(spec, suite)
    else:
        parse_defence(spec)


def poison_options(spec: str, suite: str = "") -> dict[str, str]:
    """The options of a suite's ``poison:eps=F[,...]``: eps is a fraction of the victim's median
    answer norm and the surrogate is the defender's copy, both made concrete by the bench."""
    options = {
        key.strip(): value.strip()
        for key, _, value in (item.partition("=") for item in spec.partition(":")[2].split(","))
        if key.strip()
    }
    allowed = set(defence_parameters("poison")[0]) - {"surrogate"}
    unknown = [k for k in options if k not in allowed]
    if unknown or "eps" not in options:
        what = f"unknown parameter {unknown[0]!r}" if unknown else "no eps="
        raise SleuthError(
            f"{f'suite {suite}: ' if suite else ''}{what} in {spec!r} (the bench's poison takes "
            f"{', '.join(sorted(allowed))}; eps is a fraction of the victim's median answer norm, "
            "the surrogate is the defender's copy)"
        )
    return options


_SIMCLR = dict(batch_size=256, lr=1e-3)

SUITES: dict[str, Suite] = {
    "quick": Suite(
        name="quick",
        description="every table at toy scale on the embedded data, about 30 minutes on 2 CPU "
        "cores: for CI-sized runs and for trying the bench out",
        data="demo",
        recipe=EmbedConfig(epochs=5, **_SIMCLR),
        references=14,
        other=OtherArch(arch_kwargs={"cifar_stem": False}, epochs=1, references=2),
        attack=StealConfig(epochs=20),
        budget=1000,
        losses=("mse", "infonce", STOLENENCODER),
        sweep=("mse", STOLENENCODER),
        budgets=(500, 1000, 2000),
        augmented=("mse",),
        surrogate_fractions=(0.05,),
        defence_budget=1000,
        defences=(
            ("topk:k=8", (STOLENENCODER,)),
            ("round:decimals=0", (STOLENENCODER,)),
            ("noise:sigma=1,mean=10", ("mse", STOLENENCODER)),
            ("poison:eps=0.2", (STOLENENCODER,)),
        ),
        thieves=True,
        finetune_epochs=1,
        samples=250,
        fewest=(25, 50, 100),
        scaling_samples=(250, 500, 1000),
        scaling_images={"smallresnet": (500, 1000, 2000), "resnet18": (500, 1000)},
        plain=False,
        other_owners=3,
        transforms=tuple(OUTPUT_TRANSFORMS),
        sequential_budget=100,
    ),
    "full": Suite(
        name="full",
        description="the papers' tables at CPU scale on Fashion-MNIST (60k training images): "
        "about 90 minutes on 2 CPU cores with five references (measured), some hours with fifteen",
        data="fmnist:../shared/data/fashion-mnist",
        recipe=EmbedConfig(epochs=4, **_SIMCLR),
        references=15,
        other=OtherArch(arch_kwargs={"cifar_stem": False}, epochs=1, references=2),
        attack=StealConfig(epochs=10),
        budget=10000,
        losses=(
            "mse",
            "l1",
            "cosine",
            "infonce",
            "softnn",
            "wasserstein",
            "barlow",
            "supcon",
            "symmetrized",
            STOLENENCODER,
        ),
        sweep=("mse", "infonce", STOLENENCODER),
        budgets=(500, 1000, 5000, 10000),
        augmented=("mse",),
        surrogate_fractions=(0.03, 0.05),
        defence_budget=5000,
        defences=(
            ("topk:k=8", (STOLENENCODER,)),
            ("round:decimals=0", (STOLENENCODER,)),
            ("poison:eps=0.2", (STOLENENCODER,)),
            ("noise:sigma=1,mean=10", ("mse", STOLENENCODER)),
        ),
        thieves=True,
        finetune_epochs=2,
        samples=1000,  # `sleuth verify`'s default challenge
        fewest=(25, 50, 100, 200, 400),
        scaling_samples=(250, 500, 1000, 2000, 4000),
        scaling_images={
            "smallresnet": (1000, 4000, 16000),
            "resnet18": (1000, 2000, 4000),
        },
        plain=False,
        other_owners=3,
        sequential_budget=100,
    ),
}


def get_suite(name: str) -> Suite:
    """The registered suite ``name``, or a one-line error listing the known ones."""
    try:
        return SUITES[name]
    except KeyError:
        raise SleuthError(f"unknown suite {name!r} (known: {', '.join(SUITES)})") from None


def attack_config(attack: str, base: StealConfig, **overrides: Any) -> StealConfig:
    """The StealConfig of an attack label: ``stolenencoder`` or a direct-extraction loss."""
    if attack == STOLENENCODER:
        return replace(base, method=STOLENENCODER, loss="mse", **overrides)
    return replace(base, method="direct", loss=attack, **overrides)
