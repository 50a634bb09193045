"""From a suite and a dataset to cells: every model, attack, defence, verification and timing
that the tables need, each with a stable key, its parameters and the cells it builds on.

A cell's key names its result file and model folder; its parameters are its identity (a cell
whose parameters change is run again, and so is every cell that builds on it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from sleuth.bench.suites import STOLENENCODER, Suite, attack_config
from sleuth.data.watermark import DRAWN, RANDOM, RotationWatermark
from sleuth.embed import EmbedConfig
from sleuth.errors import SleuthError
from sleuth.models.registry import Backbone, get_architecture
from sleuth.steal import StealConfig, attacker_init_seed
from sleuth.steal.losses import get_loss
from sleuth.verify.verdict import MIN_REFERENCES

GROUPS = ("embed", "steal", "defences", "verify", "scaling")
VICTIM = "embed/victim"
OWNER_SEEDS = 100  # other owners train from seeds 101, 102, ..., apart from the references'


@dataclass(frozen=True)
class Cell:
    """One unit of work and its result file."""

    key: str  # e.g. "steal/mse-10000"
    kind: str  # the function of ``sleuth.bench.cells.KINDS`` that runs it
    group: str  # what --only selects: one of GROUPS
    label: str  # what it is, for people
    params: dict[str, Any]  # JSON values; the cell's identity
    needs: tuple[str, ...] = ()  # cells whose models or results it uses


def _epochs(n: int) -> str:
    return f"{n} epoch" if n == 1 else f"{n} epochs"


@dataclass(frozen=True)
class DataSizes:
    """What the planner needs to know of the dataset."""

    private: int  # the victim's training images
    public: int  # its held-out images: the attacker's queries
    test: int
    labelled: bool


@dataclass
class Plan:
    """Cells in an order that runs every cell after the cells it needs, and what was left out."""

    cells: dict[str, Cell] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, cell: Cell) -> str:
        """Add ``cell`` unless a cell of the same key and parameters is already there."""
        cell = replace(cell, params=json.loads(json.dumps(cell.params)))  # JSON-normal form
        old = self.cells.get(cell.key)
        if old is None:
            self.cells[cell.key] = cell
        elif old.params != cell.params or old.kind != cell.kind:
            raise SleuthError(
                f"two different cells share the key {cell.key}: the suite names one copy twice"
            )
        return cell.key

    def select(self, groups: set[str]) -> list[Cell]:
        """The cells of ``groups`` and everything they need, in plan order."""
        wanted: set[str] = set()
        todo = [c.key for c in self.cells.values() if c.group in groups]
        while todo:
            key = todo.pop()
            if key not in wanted:
                wanted.add(key)
                todo.extend(self.cells[key].needs)
        return [c for c in self.cells.values() if c.key in wanted]


def steal_key(attack: str, name: int | str) -> str:
    """``steal/mse-10000``: a copy by ``attack``, named by its budget or budget and variant."""
    return f"steal/{attack}-{name}"


def verify_key(suspect: str) -> str:
    return f"verify/{suspect}"


def fewest_key(suspect: str) -> str:
    return f"fewest/{suspect}"


def defended_key(spec: str) -> str:
    return f"defended/{tag(spec)}"


def time_key(what: str, arch: str, n: int) -> str:
    """``time/verify-smallresnet-1000`` or ``time/embed-resnet18-4000``."""
    return f"time/{what}-{arch}-{n}"


def tag(spec: str) -> str:
    """A defence spec as a file-name part: ``noise:sigma=1,mean=10`` -> ``noise-sigma1-mean10``."""
    return spec.replace(":", "-").replace(",", "-").replace("=", "").replace(".", "p")


def plan(suite: Suite, data: str, task: str, sizes: DataSizes) -> Plan:
    """Every cell of ``suite`` on ``data`` (probes on ``task``), sized to the data."""
    for budget in (suite.budget, suite.defence_budget):
        if budget > sizes.public:
            raise SleuthError(
                f"suite {suite.name} spends {budget:,} queries per copy from the victim's "
                f"public images, but {data} gives only {sizes.public:,}: use a larger dataset "
                "or the quick suite"
            )
    if not sizes.labelled:
        defended = [a for _, attacks in suite.defences for a in attacks]
        for attack in (*suite.sweep, *suite.augmented, *defended):
            if attack != STOLENENCODER and get_loss(attack).needs_labels:
                raise SleuthError(
                    f"suite {suite.name} steals with {attack} beyond 000 Table 2, which needs "
                    f"labelled queries: {data} has no labels"
                )
    p = Plan()
    recipe = replace(suite.recipe, data=data)
    embeds = _embeds(p, suite, recipe, task)
    mse = _steals(p, suite, recipe, task, sizes)
    _defences(p, suite, task)
    # other owners calibrate every verification beside the references (the watermark counts
    # only against rotation-aware references: verify.verdict.MIN_ROTATION_AWARE), and each is
    # judged against the rest
    _verifications(p, suite, embeds["references"] + embeds["owners"], embeds["untrained"])
    _scaling(p, suite, recipe, embeds, mse, sizes)
    return p


def _rep_dim(cfg: EmbedConfig) -> int:
    """The representation size ``cfg`` trains: its own, else its architecture's native width."""
    if cfg.rep_dim is not None:
        return cfg.rep_dim
    kwargs = {**get_architecture(cfg.arch).kwargs_for_input(32), **cfg.arch_kwargs}
    return Backbone(cfg.arch, 1, None, kwargs).rep_dim


def _pinned(cfg: EmbedConfig) -> EmbedConfig:
    """A watermarked encoder's secret intervals, pinned to its seed so a suite reproduces (a real
    owner's are drawn from the operating system): arcs drawn from the seed, or half-turns at a
    golden-angle offset per seed."""
    if not cfg.watermark or cfg.wm_intervals not in DRAWN:
        return cfg
    if cfg.wm_intervals == RANDOM:
        return replace(cfg, wm_intervals=RotationWatermark.arcs(cfg.seed).to_spec())
    tenths = (cfg.seed * 1375) % 3600
    return replace(cfg, wm_intervals=RotationWatermark.turned(tenths).to_spec())


def _embed(p: Plan, key: str, label: str, cfg: EmbedConfig, task: str, group: str) -> str:
    cfg = _pinned(cfg)
    params = {"config": cfg.to_dict(), "task": task, "victim": VICTIM}
    return p.add(Cell(key, "embed", group, label, params, () if key == VICTIM else (VICTIM,)))


def _embeds(p: Plan, suite: Suite, recipe: EmbedConfig, task: str) -> dict[str, Any]:
    _embed(p, VICTIM, "the watermarked victim", replace(recipe, watermark=True), task, "embed")
    if suite.plain:
        cfg = replace(recipe, watermark=False)
        _embed(p, "embed/plain", "the victim's recipe and seed, no watermark", cfg, task, "embed")
    own = [
        _embed(
            p,
            f"embed/ref-{s}",
            f"independent: the victim's recipe, seed {recipe.seed + s}",
            replace(recipe, watermark=False, seed=recipe.seed + s),
            task,
            "embed",
        )
        for s in range(1, suite.references + 1)
    ]
    o = suite.other
    other = replace(
        recipe,
        arch=o.arch,
        arch_kwargs=dict(o.arch_kwargs),
        epochs=o.epochs,
        rep_dim=_rep_dim(recipe),
    )
    others = [
        _embed(
            p,
            f"embed/{o.arch}-ref-{s}",
            f"independent {o.arch}: the victim's recipe for {_epochs(o.epochs)}, seed "
            f"{recipe.seed + s}",
            replace(other, watermark=False, seed=recipe.seed + s),
            task,
            "embed",
        )
        for s in range(1, o.references + 1)
    ]
    untrained = [
        p.add(
            Cell(
                f"embed/untrained-{cfg.arch}",
                "untrained",
                "embed",
                f"an untrained {cfg.arch} (as initialised, seed {cfg.seed}): utility's floor",
                {"config": cfg.to_dict(), "task": task, "victim": VICTIM},
                (VICTIM,),
            )
        )
        for cfg in (replace(recipe, watermark=False), replace(other, watermark=False))
    ]
    owners = [
        _embed(
            p,
            f"embed/owner-{s}",
            f"independent owner's watermarked encoder (intervals of its own), seed "
            f"{recipe.seed + OWNER_SEEDS + s}",
            replace(recipe, watermark=True, seed=recipe.seed + OWNER_SEEDS + s),
            task,
            "embed",
        )
        for s in range(1, suite.other_owners + 1)
    ]
    return {
        "own": own,
        "others": others,
        "references": own + others,
        "owners": owners,
        "untrained": untrained,
        "other_recipe": other,
    }


@dataclass(frozen=True)
class _Thief:
    """Adds copies stolen from the victim with the suite's attack settings."""

    p: Plan
    base: StealConfig  # the suite's attack, querying the victim's public part
    task: str

    def steal(
        self,
        attack: str,
        queries: int,
        name: str = "",
        label: str = "",
        *,
        defences: tuple[str, ...] = (),
        queries_from: str = "public",
        defender: str | None = None,
        **settings: Any,
    ) -> str:
        cfg = attack_config(attack, self.base, queries=queries, **settings)
        params = {
            "attack": cfg.to_dict(),
            "victim": VICTIM,
            "task": self.task,
            "defences": list(defences),
            "queries_from": queries_from,
            "defender": defender,
        }
        needs = (VICTIM,) + ((defender,) if defender else ())
        group = "defences" if defences or name == "defender" else "steal"
        label = label or f"{attack}, {queries:,} queries"
        return self.p.add(
            Cell(steal_key(attack, name or queries), "steal", group, label, params, needs)
        )


def _steals(p: Plan, suite: Suite, recipe: EmbedConfig, task: str, sizes: DataSizes) -> str:
    """Every copy of the suite; returns the main mse copy's key."""
    thief = _Thief(p, replace(suite.attack, data=recipe.data, public_split=True), task)
    budgets = [b for b in suite.budgets if b <= sizes.public]
    p.notes += [
        f"{b:,} queries left out: the victim's public part holds {sizes.public:,} images"
        for b in suite.budgets
        if b > sizes.public
    ]
    losses = [a for a in suite.losses if sizes.labelled or a != "supcon"]
    if len(losses) < len(suite.losses):
        p.notes.append("supcon left out: it needs labelled queries")
    for attack in losses:  # 000 Table 2
        thief.steal(attack, suite.budget)
    for attack in suite.sweep:  # 000 Tables 4, 7, 16, 18-20
        for b in budgets:
            thief.steal(attack, b)
    mse = thief.steal("mse", suite.budget)
    for loss in suite.augmented:  # 000 Table 17
        b = suite.budget
        thief.steal(
            loss, b, f"{b}-standard", f"{loss}, {b:,} augmented queries", augment_queries=True
        )
        thief.steal(
            loss,
            b,
            f"{b}-rotation",
            f"{loss}, {b:,} augmented and rotated queries",
            augment_queries=True,
            rotate=True,
        )
    for fraction in suite.surrogate_fractions:  # 002 Table X
        _surrogate_variants(thief, recipe, fraction, max(2, round(fraction * sizes.private)))
    if suite.thieves:
        _careful_thieves(thief, suite, mse)
    for spec, attacks in suite.defences:  # 000 Tables 10-11, 002 Tables XIII-XV
        defender = None
        if spec.startswith("poison:"):
            defender = thief.steal(
                STOLENENCODER,
                suite.defence_budget,
                "defender",
                "the defender's own stolenencoder copy of its private data (002 §VII-C)",
                queries_from="private",
            )
        b = suite.defence_budget
        for attack in attacks:
            label = f"{attack}, {b:,} queries through {spec}"
            thief.steal(attack, b, f"{b}-{tag(spec)}", label, defences=(spec,), defender=defender)
        for attack in attacks:  # the undefended row of the same attack and budget
            thief.steal(attack, b)
    return mse


def _surrogate_variants(thief: _Thief, recipe: EmbedConfig, fraction: float, n: int) -> None:
    """002 Table X: SimCLR on the thief's n images, and StolenEncoder with and without its
    augmentations and querying every view."""
    se = attack_config(STOLENENCODER, thief.base, queries=n)
    # the thief's own initial weights: with the victim's seed it would start where the victim did
    seed = attacker_init_seed(thief.base.seed)
    pre = replace(recipe, watermark=False, seed=seed, batch_size=min(recipe.batch_size, n))
    thief.p.add(
        Cell(
            f"pretrain/surrogate-{n}",
            "pretrain",
            "steal",
            f"SimCLR by the victim's recipe on the thief's {n:,} images, no queries",
            {
                "config": pre.to_dict(),
                "attack": se.to_dict(),
                "fraction": fraction,
                "victim": VICTIM,
                "task": thief.task,
            },
            (VICTIM,),
        )
    )
    label = f"stolenencoder with λ = 0, {n:,} queries"
    thief.steal(STOLENENCODER, n, f"{n}-noaug", label, lam=0.0)
    label = f"stolenencoder querying every view, {n:,} images"
    thief.steal(STOLENENCODER, n * (1 + thief.base.epochs), f"{n}-queryaug", label, query_aug=True)
    thief.steal(STOLENENCODER, n)


def _careful_thieves(thief: _Thief, suite: Suite, mse: str) -> None:
    """Copies changed to escape verification: pruned, fine-tuned, rotation-invariant, and stolen
    with images unlike the victim's."""
    evade = {"victim": VICTIM, "task": thief.task, "source": mse}
    b = suite.budget
    thief.p.add(
        Cell(
            f"evade/mse-{b}-pruned",
            "evade",
            "steal",
            "the mse copy with 50 % of its weights pruned",
            {**evade, "how": "prune", "amount": 0.5},
            (VICTIM, mse),
        )
    )
    thief.p.add(
        Cell(
            f"evade/mse-{b}-finetuned",
            "evade",
            "steal",
            f"the mse copy fine-tuned with SimCLR for {_epochs(suite.finetune_epochs)} on the "
            "public images it never queried",
            {
                **evade,
                "how": "finetune",
                "epochs": suite.finetune_epochs,
                "lr": 1e-4,
                "attack": thief.p.cells[mse].params["attack"],
            },
            (VICTIM, mse),
        )
    )
    label = "stolenencoder trained invariant to rotations"
    thief.steal(STOLENENCODER, b, f"{b}-rotinv", label, rotate=True)
    label = "mse from inverted images (unlike the victim's data)"
    thief.steal("mse", b, f"{b}-otherdata", label, queries_from="inverted-public")


def _defences(p: Plan, suite: Suite, task: str) -> None:
    for spec, _attacks in suite.defences:
        defender = steal_key(STOLENENCODER, "defender") if spec.startswith("poison:") else None
        p.add(
            Cell(
                defended_key(spec),
                "defended-ta",
                "defences",
                f"a legitimate user's linear probe on answers through {spec}",
                {"defence": spec, "victim": VICTIM, "task": task, "defender": defender},
                (VICTIM,) + ((defender,) if defender else ()),
            )
        )


def transformed_key(suspect: str, transform: str) -> str:
    return f"transformed/{suspect}/{transform}"


def sequential_key(suspect: str) -> str:
    return f"sequential/{suspect}"


def _verifications(p: Plan, suite: Suite, references: list[str], others: list[str]) -> None:
    """Every model against the victim: itself, each copy, each reference (other owners
    included) against the others, and the other independent models (``others``: untrained
    encoders)."""

    def verify(suspect: str, refs: list[str], label: str) -> None:
        params = {
            "victim": VICTIM,
            "suspect": suspect,
            "references": refs,
            "samples": suite.samples,
        }
        needs = (VICTIM, suspect, *refs)
        p.add(Cell(verify_key(suspect), "verify", "verify", label, params, needs))
        if suite.sequential_budget is not None and (suspect in nulls or suspect in large):
            budget = {**params, "budget": suite.sequential_budget}
            label = f"{label}, in rounds of at most {suite.sequential_budget} queries"
            p.add(Cell(sequential_key(suspect), "sequential", "verify", label, budget, needs))
        if suspect in copies:
            # the black-box route reads answers of an unknown architecture: its references are
            # the zoo an investigator builds with `sleuth references`, the victim's recipe (the
            # most victim-like independent encoders; others only widen the null)
            by_recipe = {**params, "references": recipe_refs}
            for j, name in enumerate(suite.transforms):
                moved = {**by_recipe, "transform": name, "seed": 1000 + j}
                what = f"{label}, answers transformed by a {name}"
                key = transformed_key(suspect, name)
                p.add(
                    Cell(key, "transformed", "verify", what, moved, (VICTIM, suspect, *recipe_refs))
                )

    copies = [
        key
        for key, cell in p.cells.items()
        if cell.kind in ("steal", "evade") and cell.group == "steal"
    ]
    victim_arch = p.cells[VICTIM].params["config"]["arch"]
    recipe_refs = [r for r in references if p.cells[r].params["config"]["arch"] == victim_arch]
    nulls = set(references) | set(others)
    large = {
        k
        for k in copies
        if p.cells[k].params.get("attack", {}).get("queries", 0) >= suite.sequential_copies
    }
    verify(VICTIM, references, "the victim itself")
    for key, cell in list(p.cells.items()):
        if cell.kind in ("steal", "evade", "pretrain") and cell.group == "steal":
            verify(key, references, cell.label)
    for ref in references:
        verify(ref, [r for r in references if r != ref], p.cells[ref].label)
    for other in others:
        verify(other, references, p.cells[other].label)
    for attack in suite.sweep:
        suspect = steal_key(attack, suite.budget)
        p.add(
            Cell(
                fewest_key(suspect),
                "fewest",
                "verify",
                f"fewest challenge images that find {p.cells[suspect].label} stolen",
                {
                    "victim": VICTIM,
                    "suspect": suspect,
                    "references": references,
                    "samples": list(suite.fewest),
                },
                (VICTIM, suspect, *references),
            )
        )


def _scaling(
    p: Plan, suite: Suite, recipe: EmbedConfig, embeds: dict, mse: str, sizes: DataSizes
) -> None:
    other = embeds["other_recipe"]
    other_victim = _embed(
        p,
        f"embed/{other.arch}-victim",
        f"a watermarked {other.arch} victim for one epoch (to time verification, whose cost "
        "does not depend on how well the victim learned)",
        replace(other, watermark=True, epochs=1),
        p.cells[VICTIM].params["task"],
        "scaling",
    )
    # three references, so that every test is calibrated as in a real verification; the
    # resnet18 suspect is its first reference, and the victim's architecture fills any gap
    k = MIN_REFERENCES
    others = embeds["others"]
    zoos = {
        recipe.arch: (VICTIM, mse, embeds["own"][:k]),
        other.arch: (other_victim, others[0], (others[1:] + embeds["own"])[:k]),
    }
    limit = min(sizes.private, sizes.public)
    for arch, (victim, suspect, refs) in zoos.items():
        for n in suite.scaling_samples:
            if n > limit:
                p.notes.append(f"verification at {n:,} samples left out: {limit:,} images")
                continue
            p.add(
                Cell(
                    time_key("verify", arch, n),
                    "time-verify",
                    "scaling",
                    f"verification of a {arch} suspect, {n:,} samples, {len(refs)} references",
                    {
                        "victim": victim,
                        "suspect": suspect,
                        "references": refs,
                        "samples": n,
                        "arch": arch,
                    },
                    (victim, suspect, *refs),
                )
            )
    for arch, counts in suite.scaling_images.items():
        cfg = other if arch == other.arch else replace(recipe, arch=arch)
        for n in counts:
            if n > sizes.private:
                p.notes.append(f"{arch} training on {n:,} images left out: {sizes.private:,}")
                continue
            timed = replace(cfg, watermark=True, epochs=2, batch_size=min(cfg.batch_size, n))
            p.add(
                Cell(
                    time_key("embed", arch, n),
                    "time-embed",
                    "scaling",
                    f"{arch}: two epochs of SimCLR and the watermark on {n:,} images",
                    {"config": timed.to_dict(), "images": n},
                )
            )
