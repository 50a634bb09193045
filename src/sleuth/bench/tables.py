"""Markdown tables from a bench's results, shaped like the papers' tables, with theirs beside.

Pure functions of ``results.json``: a table whose cells have not run yet is left out, so a
partial bench renders what it has. Accuracies are in percent; p-values are one-sided.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

from statsmodels.stats.proportion import proportion_confint

from sleuth.bench import papers
from sleuth.bench.cells import WATERMARK_IMAGES
from sleuth.bench.plan import (
    VICTIM,
    defended_key,
    fewest_key,
    steal_key,
    tag,
    time_key,
    transformed_key,
    verify_key,
)
from sleuth.bench.suites import STOLENENCODER
from sleuth.verify.evidence import TEST_INFO
from sleuth.verify.result import format_p
from sleuth.verify.verdict import weaker_family_p

DASH = "–"


def pct(x: float | None) -> str:
    return DASH if x is None else f"{100 * x:.1f}"


def num(x: float | None, digits: int = 3) -> str:
    return DASH if x is None else f"{x:.{digits}g}"


def md(header: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> list[str]:
    """A Markdown table; ``align`` has one ``l`` or ``r`` per column."""
    marks = {"l": "---", "r": "---:"}
    return [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(marks[a] for a in align) + " |",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def table(
    intro: str, header: Sequence[str], rows: Sequence[Sequence[str]], align: str
) -> list[str]:
    """A paragraph saying what the table shows, then the table."""
    return [intro, "", *md(header, rows, align)]


class View:
    """Read access to a results document by cell key."""

    def __init__(self, results: dict[str, Any]) -> None:
        self.results = results
        self.cells: dict[str, Any] = results["cells"]
        self.suite: dict[str, Any] = results["suite_definition"]

    def result(self, key: str) -> dict[str, Any] | None:
        cell = self.cells.get(key)
        return None if cell is None else cell["result"]

    def get(self, key: str, field: str) -> Any:
        r = self.result(key)
        return None if r is None else r.get(field)

    @property
    def ta(self) -> float | None:
        return self.get(VICTIM, "accuracy")

    @property
    def floor(self) -> float | None:
        """The probe accuracy of an untrained encoder of the victim's architecture."""
        arch = self.get(VICTIM, "arch")
        return self.get(f"embed/untrained-{arch}", "accuracy")

    def lead(self, accuracy: float | None) -> float | None:
        """The share of the victim's lead over the untrained floor that ``accuracy`` recovers
        (SA/TA near 1 says little when random features already get most of TA)."""
        if accuracy is None or self.ta is None or self.floor is None or self.ta <= self.floor:
            return None
        return (accuracy - self.floor) / (self.ta - self.floor)

    def test(self, suspect: str, name: str) -> dict[str, Any] | None:
        r = self.result(verify_key(suspect))
        if r is None:
            return None
        return next((t for t in r["tests"] if t["name"] == name), None)

    def of_kind(self, kind: str) -> list[str]:
        return [k for k, c in self.cells.items() if c["kind"] == kind]

    def references(self) -> list[str]:
        """The independent references of the victim's and the other architecture."""
        return [k for k in self.of_kind("embed") if "ref-" in _short(k)]

    def own_references(self) -> list[str]:
        return [k for k in self.of_kind("embed") if k.startswith("embed/ref-")]

    def label(self, key: str) -> str:
        return self.cells[key]["label"] if key in self.cells else key

    def mean(self, keys: Sequence[str], field: str) -> float | None:
        values = [self.get(k, field) for k in keys]
        values = [v for v in values if v is not None]
        return statistics.fmean(values) if values else None


def _short(key: str) -> str:
    return key.split("/", 1)[1]


# --- embedding -------------------------------------------------------------------------------


def encoders(v: View) -> list[str]:
    keys = v.of_kind("embed")
    if not keys:
        return []
    rows = []
    for k in keys:
        r = v.result(k)
        rows.append(
            [
                _short(k),
                r["arch"],
                f"{r['parameters'] / 1e6:.2f} M",
                str(r["epochs"]),
                f"{r['train_s']:.0f}",
                f"{r['images_per_s']:.0f}",
                pct(r["own_watermark"]),
                pct(r["victim_watermark"]),
                pct(r["accuracy"]),
            ]
        )
    return table(
        "Every encoder trained by the bench. Own watermark: its own predictor on its rotated "
        "private images; victim's: the victim's predictor on its representations (chance "
        "50 %; 000's watermark success rate); accuracy: linear probe on the task. Times are "
        "single runs; the watermark's cost is measured under control in the foundation "
        "benchmark.",
        [
            "encoder",
            "arch",
            "parameters",
            "epochs",
            "train s",
            "images/s",
            "own watermark %",
            "victim's watermark %",
            "accuracy %",
        ],
        rows,
        "llrrrrrrr",
    )


# --- stealing ----------------------------------------------------------------------------------


def _copy_row(v: View, key: str) -> list[str]:
    r = v.result(key)
    if r is None:
        return [DASH] * 6
    ratio = r["accuracy"] / v.ta if v.ta else None
    return [
        pct(r["accuracy"]),
        num(ratio),
        pct(v.lead(r["accuracy"])),
        pct(r["victim_watermark"]),
        f"{r['queries_used']:,}",
        f"{r['steal_s']:.0f}",
    ]


def table_000_2(v: View) -> list[str]:
    budget = v.suite["budget"]
    keys = [steal_key(a, budget) for a in v.suite["losses"] if steal_key(a, budget) in v.cells]
    if not keys or v.ta is None:
        return []
    paper = papers.T000_2
    rows = [
        ["victim", pct(v.ta), "1", "100", pct(v.get(VICTIM, "victim_watermark")), DASH, DASH]
        + [" / ".join(str(x) for x in paper["victim"])]
    ]
    if v.floor is not None:
        untrained = f"embed/untrained-{v.get(VICTIM, 'arch')}"
        ratio = num(v.floor / v.ta) if v.ta else DASH
        watermark = pct(v.get(untrained, "victim_watermark"))
        rows.append(["untrained (floor)", pct(v.floor), ratio, "0", watermark, DASH, DASH, DASH])
    for k in keys:
        attack = v.cells[k]["params"]["attack"]
        name = STOLENENCODER if attack["method"] == STOLENENCODER else attack["loss"]
        theirs = paper["rows"].get(name)
        rows.append(
            [name, *_copy_row(v, k), " / ".join(str(x) for x in theirs) if theirs else DASH]
        )
    return table(
        (
            f"Every loss at {budget:,} queries of the victim's public images; SA on the task, "
            "of lead: the share of the victim's lead over an untrained encoder of its "
            "architecture (the floor) that the copy recovers; watermark success on the victim's "
            f"predictor. Paper: {paper['source']}."
        ),
        [
            "loss",
            "SA %",
            "SA/TA",
            "of lead %",
            "watermark %",
            "queries",
            "steal s",
            "000 Table 2: SA % C10 / STL10 / SVHN",
        ],
        rows,
        "lrrrrrrl",
    )


def _sweep(v: View) -> tuple[list[str], list[int]]:
    attacks = [a for a in v.suite["sweep"] if any(k in v.cells for k in _sweep_keys(v, a))]
    budgets = [b for b in v.suite["budgets"] if any(steal_key(a, b) in v.cells for a in attacks)]
    return attacks, budgets


def _sweep_keys(v: View, attack: str) -> list[str]:
    return [steal_key(attack, b) for b in v.suite["budgets"]]


def _paper_rows(
    paper: dict[str, dict[int, float]], attacks: Sequence[str], budgets: Sequence[int], source: str
) -> list[list[str]]:
    """The paper's row of each attack that shares a budget with ours, under our columns."""
    return [
        [f"{a} ({source})", *(str(paper[a].get(b, DASH)) for b in budgets)]
        for a in attacks
        if set(paper.get(a, {})) & set(budgets)
    ]


def _paper_elsewhere(
    paper: dict[str, dict[int, float]], attacks: Sequence[str], budgets: Sequence[int]
) -> str:
    """The paper's figures that ``_paper_rows`` does not show (other attacks, other budgets),
    so that none of them is left out."""
    parts = []
    for a, by_budget in paper.items():
        other = [
            f"{b:,}: {x}" for b, x in by_budget.items() if a not in attacks or b not in budgets
        ]
        if other:
            parts.append(f"{a} {', '.join(other)}")
    return f" The paper's other figures (queries: value): {'; '.join(parts)}." if parts else ""


def _by_budget(
    v: View,
    field: Callable[[str], str],
    paper: dict[str, dict[int, float]],
    source: str,
    extra: Sequence[list[str]] = (),
) -> list[str]:
    attacks, budgets = _sweep(v)
    if not attacks:
        return []
    rows = [[a, *(field(steal_key(a, b)) for b in budgets)] for a in attacks]
    rows += list(extra)
    rows += _paper_rows(paper, attacks, budgets, source)
    return md(["attack", *(f"{b:,}" for b in budgets)], rows, "l" + "r" * len(budgets))


def table_000_7(v: View) -> list[str]:
    _, budgets = _sweep(v)
    floor = [["untrained (floor)", *(pct(v.floor) for _ in budgets)]] if v.floor else []
    table = _by_budget(
        v,
        lambda k: pct(v.get(k, "accuracy")),
        papers.T000_7["rows"],
        "000 Table 7",
        floor,
    )
    if not table:
        return []
    return [
        f"SA (%) by query budget; the victim's TA is {pct(v.ta)}, an untrained encoder of its "
        f"architecture gets {pct(v.floor)}. Paper: "
        f"{papers.T000_7['source']}.{_paper_elsewhere(papers.T000_7['rows'], *_sweep(v))}",
        "",
        *table,
    ]


def table_000_16(v: View) -> list[str]:
    refs = v.own_references()
    independent = v.mean(refs, "victim_watermark")
    _, budgets = _sweep(v)
    extra = [
        ["victim", *(pct(v.get(VICTIM, "victim_watermark")) for _ in budgets)],
        [f"independent (mean of {len(refs)})", *(pct(independent) for _ in budgets)],
    ]
    table = _by_budget(
        v,
        lambda k: pct(v.get(k, "victim_watermark")),
        papers.T000_16["rows"],
        "000 Table 16",
        extra,
    )
    if not table:
        return []
    return [
        "Watermark success rate (%): the victim's augmentation predictor on each model's "
        f"representations of {WATERMARK_IMAGES:,} rotated private images. Paper: "
        f"{papers.T000_16['source']}; {papers.T000_16['random']}."
        f"{_paper_elsewhere(papers.T000_16['rows'], *_sweep(v))}",
        "",
        *table,
    ]


def table_000_17(v: View) -> list[str]:
    budget = v.suite["budget"]
    rows = []
    for loss in v.suite["augmented"]:
        keys = [
            steal_key(loss, f"{budget}-standard"),
            steal_key(loss, f"{budget}-rotation"),
            steal_key(loss, budget),
        ]
        if not any(k in v.cells for k in keys):
            continue
        theirs = papers.T000_17["rows"].get(loss)
        rows.append(
            [loss, *(pct(v.get(k, "victim_watermark")) for k in keys)]
            + [" / ".join(str(x) for x in theirs) if theirs else DASH]
        )
    if not rows:
        return []
    return table(
        (
            f"Watermark success rate (%) at {budget:,} queries by what the thief sends: one "
            "SimCLR-augmented view per image (Standard), augmented and rotated (+Rotation) or the "
            f"image itself (NoAug). Paper: {papers.T000_17['source']}."
        ),
        ["loss", "Standard", "+Rotation", "NoAug", "000 Table 17: Standard / +Rot. / NoAug"],
        rows,
        "lrrrl",
    )


def table_002_2(v: View) -> list[str]:
    keys = [k for k in _sweep_keys(v, STOLENENCODER) if k in v.cells]
    if not keys or v.ta is None:
        return []
    rows = [
        [
            f"{v.get(k, 'queries_used'):,}",
            pct(v.ta),
            pct(v.get(k, "accuracy")),
            f"{100 * v.get(k, 'accuracy') / v.ta:.0f}",
        ]
        for k in keys
    ]
    theirs = "; ".join(
        f"{pre}: TA {ta}, SA {sa}, {ratio} %"
        for pre, (ta, sa, ratio) in papers.T002_2["rows"].items()
    )
    return table(
        (f"StolenEncoder on task {v.results['task']}. Paper, {papers.T002_2['source']}: {theirs}."),
        ["queries", "TA %", "SA %", "SA/TA %"],
        rows,
        "rrrr",
    )


def table_002_10(v: View) -> list[str]:
    rows = []
    for key in v.of_kind("pretrain"):
        fraction = v.cells[key]["params"]["fraction"]
        images = v.cells[key]["params"]["attack"]["queries"]
        theirs = papers.T002_10["rows"].get(fraction, {})
        methods = {
            "Pre-training-encoder": key,
            "StolenEncoder-w/o-aug": steal_key(STOLENENCODER, f"{images}-noaug"),
            "StolenEncoder-query-aug": steal_key(STOLENENCODER, f"{images}-queryaug"),
            "StolenEncoder": steal_key(STOLENENCODER, images),
        }
        for method, cell in methods.items():
            r = v.result(cell)
            if r is None:
                continue
            paper_sa, paper_q = theirs.get(method, (None, None))
            rows.append(
                [
                    f"{100 * fraction:g} % ({images:,} images)",
                    method,
                    pct(r["accuracy"]),
                    f"{r.get('queries_used', 0):,}",
                    DASH if paper_sa is None else f"{paper_sa} ({paper_q:,} queries)",
                ]
            )
    if not rows:
        return []
    return table(
        (
            "StolenEncoder against its variants, the surrogate set a fraction of the victim's "
            f"training images. Paper: {papers.T002_10['source']}."
        ),
        ["surrogate", "method", "SA %", "queries", "002 Table X: SA % (queries)"],
        rows,
        "llrrl",
    )


def defences(v: View) -> list[str]:
    budget = v.suite["defence_budget"]
    specs = [s for s, _ in v.suite["defences"] if defended_key(s) in v.cells]
    if not specs:
        return []
    attacks = sorted({a for _, attacks in v.suite["defences"] for a in attacks})
    rows = [["none", pct(v.ta), *(pct(v.get(steal_key(a, budget), "accuracy")) for a in attacks)]]
    for spec in specs:
        cells = [steal_key(a, f"{budget}-{tag(spec)}") for a in attacks]
        applied = v.get(defended_key(spec), "defence")
        shown = spec if applied == spec else f"{spec} (applied: {applied.split(',surrogate=')[0]})"
        rows.append(
            [
                shown,
                pct(v.get(defended_key(spec), "accuracy")),
                *(pct(v.get(k, "accuracy")) for k in cells),
            ]
        )
    out = [
        f"A legitimate user's linear probe on defended answers (TA) against copies stolen "
        f"through the defence with {budget:,} queries (SA). Poison's ε is a fraction of the "
        "victim's median answer norm; its surrogate is the defender's own copy of its private "
        "data.",
        "",
        *md(["defence", "TA %", *(f"SA % {a}" for a in attacks)], rows, "lr" + "r" * len(attacks)),
        "",
        "The papers' figures, TA / SA %:",
        "",
    ]
    for family, fig in papers.DEFENCES.items():
        if not any(s.startswith(family + ":") for s in specs):
            continue
        cells = ", ".join(
            f"{_defence_param(family, p)}: {ta} / {sa}" for p, (ta, sa) in fig["rows"].items()
        )
        out.append(f"- {fig['source']}: {cells}.")
    return out


def _defence_param(family: str, p: Any) -> str:
    names = {"topk": "k={}", "round": "{} decimals", "poison": "ε={}"}
    if family == "noise":
        return f"mean {p[0]}, σ={p[1]}"
    return names[family].format(p)


# --- verification ------------------------------------------------------------------------------


def _cell(t: dict[str, Any] | None) -> str:
    if t is None:
        return DASH
    if t.get("guards"):  # a shifted-image or basis test: never accuses, may withhold a clearance
        return "**atypical**" if t["atypical"] else "typical"
    info = TEST_INFO.get(t["name"])
    if "guards" not in t and not t["counted"] and t["valid"] and info and info.clears_only:
        return "guard"  # recorded before cells kept typicality: the verdict's reason names it
    if not t["counted"]:
        return "n/c"
    mark = " **✓**" if t["rejected"] else ""
    return format_p(t["p_adjusted"]) + mark


def _expected(v: View, suspect: str) -> str:
    kind = v.cells[suspect]["kind"] if suspect in v.cells else "embed"
    if suspect == VICTIM:
        return "the victim"
    return "copy" if kind in ("steal", "evade") else "independent"


def test_order(records: list[dict]) -> list[str]:
    """The tests that appear in verification records: the registry's order, then any others
    (results made by an older sleuth keep their columns)."""
    seen = {t["name"] for r in records for t in r["tests"]}
    known = [name for name in TEST_INFO if name in seen]
    return known + sorted(seen - set(known))


def verification(v: View) -> list[str]:
    keys = v.of_kind("verify")
    if not keys:
        return []
    order = test_order([v.result(k) for k in keys])
    rows, false_positives, copies, found = [], [], 0, 0
    for k in keys:
        suspect = v.cells[k]["params"]["suspect"]
        r = v.result(k)
        tests = {t["name"]: t for t in r["tests"]}
        expected = _expected(v, suspect)
        verdict = r["verdict"]
        if expected == "independent" and verdict == "stolen":
            false_positives.append(suspect)
            verdict = f"**{verdict}** (false positive)"
        if expected == "copy":
            copies += 1
            found += r["verdict"] == "stolen"
        few = v.result(fewest_key(suspect))
        few_s = (
            DASH if not few or few["samples"] is None else f"{few['samples']} ({few['queries']:,})"
        )
        rows.append(
            [
                _short(suspect),
                v.label(suspect),
                expected,
                verdict,
                format_p(margin(r)),
                *(_cell(tests.get(t)) for t in order),
                f"{r['seconds']:.0f}",
                few_s,
            ]
        )
    independents = [
        k for k in keys if _expected(v, v.cells[k]["params"]["suspect"]) == "independent"
    ]
    rejected = {
        t: sum(
            any(x["name"] == t and x["rejected"] for x in v.result(k)["tests"])
            for k in independents
        )
        for t in order
    }
    samples = v.suite["samples"]
    return [
        f"Every model verified against the victim with {samples:,} challenge samples (private and "
        "public images each) and the independent references (each reference against the "
        "others), α = 0.01, Holm over every counted test. A cell is the Holm-adjusted decision "
        "p-value (the larger of the analytic and the reference-calibrated p); **✓** a "
        "rejection, n/c a test that did not count; the shifted-image and basis tests, which "
        "never accuse, say whether the suspect is typical of the references there (guard: recorded "
        "without it; the verdict names any it withholds a clearance for). Margin: the "
        "smallest α at which two families reject (the weaker family's best adjusted p). "
        "Fewest: the smallest challenge of "
        f"{', '.join(str(n) for n in v.suite['fewest'])} samples that still finds the copy "
        "stolen (queries to the suspect).",
        "",
        *md(
            ["suspect", "how it was made", "is", "verdict", "margin", *order, "seconds", "fewest"],
            rows,
            "llll" + "r" * (len(order) + 3),
        ),
        "",
        f"Copies found stolen: {found} of {copies}. Independent models (references, each "
        "against the others; encoders trained on the thief's images without queries; other "
        "owners' watermarked encoders; untrained encoders) accused: "
        f"{rate(len(false_positives), len(independents))}"
        + (f" ({', '.join(false_positives)})" if false_positives else "")
        + "; cleared (`not_stolen`): "
        + rate(sum(v.result(k)["verdict"] == "not_stolen" for k in independents), len(independents))
        + "; per test, independent models rejected: "
        + ", ".join(f"{t} {n}/{len(independents)}" for t, n in rejected.items())
        + ". Intervals: 95 % Clopper-Pearson.",
    ]


def rate(k: int, n: int) -> str:
    """``k of n`` with its 95 % Clopper-Pearson interval."""
    if n == 0:
        return "0 of 0"
    low, high = proportion_confint(k, n, alpha=0.05, method="beta")
    return f"{k} of {n} ({pct(low)}-{pct(high)} %)"


def margin(r: dict[str, Any]) -> float | None:
    """A verification summary's ``p_verdict``: the smallest alpha at which it is stolen."""
    return weaker_family_p((t["family"], t["p_adjusted"]) for t in r["tests"] if t["counted"])


def _strongest(r: dict[str, Any]) -> str:
    counted = [t for t in r["tests"] if t["counted"]]
    if not counted:
        return r["verdict"]
    best = min(counted, key=lambda t: t["p_adjusted"])
    strongest = f"{best['name']} {format_p(best['p_adjusted'])}"
    if r["verdict"] == "stolen":
        strongest += f"; margin {format_p(margin(r))}"
    return f"{r['verdict']} ({strongest})"


def transformed(v: View) -> list[str]:
    keys = v.of_kind("transformed")
    if not keys:
        return []
    names = list(dict.fromkeys(v.cells[k]["params"]["transform"] for k in keys))
    suspects = list(dict.fromkeys(v.cells[k]["params"]["suspect"] for k in keys))
    rows, same, total, stolen, cleared = [], 0, 0, 0, 0
    for suspect in suspects:
        plain = v.result(verify_key(suspect))
        row = [_short(suspect), _strongest(plain) if plain else DASH]
        for name in names:
            r = v.result(transformed_key(suspect, name))
            if r is None:
                row.append(DASH)
                continue
            total += 1
            same += plain is not None and r["verdict"] == plain["verdict"]
            stolen += r["verdict"] == "stolen"
            cleared += r["verdict"] == "not_stolen"
            row.append(_strongest(r))
        rows.append(row)
    return [
        "Each copy's answers transformed by its thief at no cost to his customers (a secret "
        "rotation, a permutation of coordinates, a scale and a shift, Gaussian noise of 10 % "
        "of each coordinate's spread) and verified through the black-box route (`sleuth "
        "challenge`, answers, `verify --suspect-reps`) against the references of the victim's "
        "recipe, the zoo `sleuth references` builds (an API's architecture is unknown, and "
        "encoders of the victim's recipe are the most victim-like independent ones; "
        "docs/verification.md says what references of other kinds cost). A cell: the verdict "
        "and its strongest counted test (Holm-adjusted p) and, when stolen, its margin (the "
        "smallest α at which two families reject).",
        "",
        *md(["copy", "as it is", *names], rows, "l" * (2 + len(names))),
        "",
        f"Verdicts equal to the untransformed copy's: {same} of {total}; `stolen`: {stolen} "
        f"of {total}; `not_stolen`: {cleared} of {total}.",
    ]


def sequential(v: View) -> list[str]:
    keys = v.of_kind("sequential")
    if not keys:
        return []
    rows, copies, found, independents, accused = [], 0, 0, 0, 0
    for k in keys:
        suspect = v.cells[k]["params"]["suspect"]
        r = v.result(k)
        expected = _expected(v, suspect)
        if expected == "copy":
            copies += 1
            found += r["verdict"] == "stolen"
        elif expected == "independent":
            independents += 1
            accused += r["verdict"] == "stolen"
        rows.append(
            [_short(suspect), expected, r["verdict"], f"{r['queries_used']:,}", str(r["rounds"])]
        )
    budget = v.suite.get("sequential_budget")
    return [
        f"`sleuth verify --budget {budget}`: the challenge in rounds of 10, 20, 40, ... private "
        "images (one query each), stopping at the first `stolen`; α spent in proportion to each "
        "round's samples, so the false-accusation rate holds at any stopping time "
        "(docs/verification.md). Queries: distinct images the suspect answered.",
        "",
        *md(["suspect", "is", "verdict", "queries", "rounds"], rows, "lllrr"),
        "",
        f"Copies of at least {v.suite.get('sequential_copies', 2000):,} queries found stolen "
        f"within {budget} queries: {found} of "
        f"{copies}. Independent models accused: {rate(accused, independents)}.",
    ]


def _sweep_tests(v: View, name: str) -> list[tuple[str, int, dict[str, Any]]]:
    attacks, budgets = _sweep(v)
    out = []
    for a in attacks:
        for b in budgets:
            t = v.test(steal_key(a, b), name)
            if t is not None:
                out.append((a, b, t))
    return out


def table_000_4(v: View) -> list[str]:
    found = _sweep_tests(v, "watermark-ttest")
    if not found:
        return []
    rows = [
        [
            a,
            f"{b:,}",
            num(t["effect"]),
            format_p(t["p_value"]),
            num(t["statistic"]),
            format_p(t["p_reference"]),
            _cell(t),
        ]
        for a, b, t in found
    ]
    for ref in v.references():
        t = v.test(ref, "watermark-ttest")
        if t is not None:
            rows.append(
                [
                    _short(ref),
                    "independent",
                    num(t["effect"]),
                    format_p(t["p_value"]),
                    num(t["statistic"]),
                    format_p(t["p_reference"]),
                    _cell(t),  # marked as the copies' are: a false positive must show
                ]
            )
    theirs = "; ".join(f"{d} {q}: Δμ {m}, p {p}, t {t}" for d, q, m, p, t in papers.T000_4["rows"])
    return table(
        (
            "The watermark ownership t-test (one-sample, one-sided, correctness against chance "
            "0.5): Δμ is accuracy − 0.5, p the analytic p-value, p vs references the calibrated "
            "one, and adjusted the decision p after Holm. Paper, "
            f"{papers.T000_4['source']}: {theirs}."
        ),
        ["suspect", "queries", "Δμ", "p", "t", "p vs references", "adjusted"],
        rows,
        "lrrrrrr",
    )


def table_000_18(v: View) -> list[str]:
    found = _sweep_tests(v, "distance-l2")
    if not found:
        return []
    _, budgets = _sweep(v)
    random = (
        statistics.fmean(found[0][2]["reference_scores"])
        if found[0][2]["reference_scores"]
        else None
    )
    attacks = list(dict.fromkeys(a for a, _, _ in found))
    rows = [
        [
            a,
            *(
                num(next((t["score"] for x, b2, t in found if x == a and b2 == b), None))
                for b in budgets
            ),
        ]
        for a in attacks
    ]
    rows += _paper_rows(papers.T000_18["rows"], attacks, budgets, "000 Table 18")
    rows.append(["independent (mean of references)", *(num(random) for _ in budgets)])
    return table(
        (
            "Mean ℓ2 distance to the victim's representations of its private images, in each "
            "model's standardised coordinates (centred and scaled by its own spread on public "
            "images, so that scale is not mistaken for theft; the paper's are raw). Paper: "
            f"{papers.T000_18['source']}; random model {papers.T000_18['random']}."
            f"{_paper_elsewhere(papers.T000_18['rows'], attacks, budgets)}"
        ),
        ["attack", *(f"{b:,}" for b in budgets)],
        rows,
        "l" + "r" * len(budgets),
    )


def table_000_19(v: View) -> list[str]:
    rows = []
    attacks, budgets = _sweep(v)
    for a in attacks:
        for b in budgets:
            r = v.result(verify_key(steal_key(a, b)))
            t = v.test(steal_key(a, b), "noise-sensitivity")
            if r is None or t is None or r["noise_means"] is None:
                continue
            nv = r["noise_means"]["victim_spread"]
            refs = [s * nv for s in t["reference_scores"]]
            rows.append(
                [
                    a,
                    f"{b:,}",
                    num(nv),
                    num(statistics.fmean(refs)) if refs else DASH,
                    num(r["noise_means"]["suspect_spread"]),
                    format_p(t["p_value"]),
                    format_p(t["p_reference"]),
                ]
            )
    if not rows:
        return []
    theirs = "; ".join(f"{loss} {q:,}: μσS {s}, p1 {p}" for loss, q, s, p in papers.T000_19["rows"])
    return table(
        (
            "Noise sensitivity: the mean spread of a model's representation under small input "
            "noise around private images (relative to the representation's size), victim V, "
            "independent references R, suspect S. p: paired t-test of H0 μσS ≥ μσV; p vs "
            "references: the "
            f"suspect's ratio μσS/μσV among the references'. Paper, {papers.T000_19['source']}: "
            f"{theirs}. The paper's p1 tests the opposite H0 (μσS ≤ μσV), so its copies show "
            "p1 near 1 where ours show p near 0."
        ),
        ["attack", "queries", "μσV", "μσR", "μσS", "p", "p vs references"],
        rows,
        "lrrrrrr",
    )


def table_000_20(v: View) -> list[str]:
    found = _sweep_tests(v, "di-head-loss")
    rows = [
        [
            a,
            f"{b:,}",
            num(t["effect"]),
            format_p(t["p_value"]),
            num(t["statistic"]),
            format_p(v.test(steal_key(a, b), "di-gmm")["p_value"])
            if v.test(steal_key(a, b), "di-gmm")
            else DASH,
        ]
        for a, b, t in found
    ]
    for k in [VICTIM, *v.references()]:
        t, g = v.test(k, "di-head-loss"), v.test(k, "di-gmm")
        if t is not None:
            rows.append(
                [
                    _short(k),
                    DASH,
                    num(t["effect"]),
                    format_p(t["p_value"]),
                    num(t["statistic"]),
                    format_p(g["p_value"]) if g else DASH,
                ]
            )
    if not rows:
        return []
    theirs = "; ".join(
        f"{m} ({ln}) {q}: Δμ {d}, p {p}, t {t}" for m, ln, q, d, p, t in papers.T000_20["rows"]
    )
    return table(
        (
            "Dataset inference: the victim's projection-head contrastive loss on a model's "
            "representations of private against public images (Δμ = mean public − mean private "
            "loss; one-sided Welch t-test), and the Gaussian-mixture likelihood test (di-gmm). "
            f"Paper, {papers.T000_20['source']}: {theirs}."
        ),
        ["model", "queries", "Δμ", "p", "t", "di-gmm p"],
        rows,
        "lrrrrr",
    )


# --- scaling ---------------------------------------------------------------------------------


def scaling(v: View) -> list[str]:
    out: list[str] = []
    verify_cells = v.of_kind("time-verify")
    if verify_cells:
        archs = list(dict.fromkeys(v.cells[k]["params"]["arch"] for k in verify_cells))
        samples = sorted({v.cells[k]["params"]["samples"] for k in verify_cells})
        sizes = {
            a: next(
                v.get(k, "parameters") for k in verify_cells if v.cells[k]["params"]["arch"] == a
            )
            for a in archs
        }
        models = {
            a: next(v.get(k, "models") for k in verify_cells if v.cells[k]["params"]["arch"] == a)
            for a in archs
        }
        rows = [
            [f"{n:,}", *(num(v.get(time_key("verify", a, n), "seconds")) for a in archs)]
            for n in samples
        ]
        out += [
            "Verification seconds by challenge size (private and public images each) and "
            "architecture: "
            + ", ".join(
                f"{a} ({sizes[a] / 1e6:.2f} M parameters, {models[a]} models answer)" for a in archs
            )
            + ".",
            "",
            *md(["samples", *(f"{a} s" for a in archs)], rows, "r" * (1 + len(archs))),
            "",
        ]
    embed_cells = v.of_kind("time-embed")
    if embed_cells:
        archs = list(dict.fromkeys(v.get(k, "arch") for k in embed_cells))
        images = sorted({v.get(k, "images") for k in embed_cells})
        rows = []
        for n in images:
            row = [f"{n:,}"]
            for a in archs:
                r = v.result(time_key("embed", a, n))
                row.append(DASH if r is None else f"{r['epoch_s']:.1f} ({r['images_per_s']:.0f}/s)")
            rows.append(row)
        out += [
            "Embedding: seconds per epoch of SimCLR with the watermark (the second epoch, "
            "warm), and training images per second, by training-set size.",
            "",
            *md(["images", *(f"{a} s/epoch" for a in archs)], rows, "r" * (1 + len(archs))),
            "",
        ]
    attacks, budgets = _sweep(v)
    if attacks:
        epochs = v.suite["attack"]["epochs"]
        rows = [
            [f"{b:,}", *(num(v.get(steal_key(a, b), "steal_s")) for a in attacks)] for b in budgets
        ]
        out += [
            f"Stealing seconds by query budget ({epochs} epochs over the answers; two-view "
            "losses spend two queries per image).",
            "",
            *md(["queries", *(f"{a} s" for a in attacks)], rows, "r" * (1 + len(attacks))),
            "",
        ]
    return out[:-1] if out else out


# (title, table, the group of cells it reads: what `--only` regenerates it with)
SECTIONS: list[tuple[str, Callable[[View], list[str]], str]] = [
    ("Encoders", encoders, "embed"),
    ("Stealing with every loss (000 Table 2)", table_000_2, "steal"),
    ("Stolen accuracy by query budget (000 Table 7)", table_000_7, "steal"),
    ("StolenEncoder's utility (002 Table II)", table_002_2, "steal"),
    ("StolenEncoder and its variants (002 Table X)", table_002_10, "steal"),
    ("Watermark transfer by query budget (000 Table 16)", table_000_16, "steal"),
    ("Watermark transfer by query augmentation (000 Table 17)", table_000_17, "steal"),
    ("Defences (002 Tables XIII-XV, 000 Tables 10-11)", defences, "defences"),
    ("Verdicts: every copy, careful thief and independent model", verification, "verify"),
    ("Verdicts under the thief's free output transformations", transformed, "verify"),
    ("Sequential verification: fewest queries", sequential, "verify"),
    ("Watermark ownership t-test (000 Table 4)", table_000_4, "verify"),
    ("Representation distance (000 Table 18)", table_000_18, "verify"),
    ("Noise sensitivity (000 Table 19)", table_000_19, "verify"),
    ("Dataset inference (000 Table 20)", table_000_20, "verify"),
    ("Scaling", scaling, "scaling"),
]


def machine_line(m: dict[str, Any]) -> str:
    gpu = f", {m['gpu']}" if m.get("gpu") else ""
    return (
        f"{m['cpu']}, {m['cores']} cores ({m['torch_threads']} torch threads), "
        f"{m['memory_gib']:g} GiB, device {m['device']}{gpu}, torch {m['torch']}"
    )


def command(results: dict[str, Any], out_dir: str) -> str:
    task = "" if results["task"] == results["data"] else f" --task {results['task']}"
    return f"sleuth bench --suite {results['suite']} --data {results['data']}{task} --out {out_dir}"


def render(
    results: dict[str, Any], *, out_dir: str, level: int = 2, plot: str | None = None
) -> str:
    """Every table the results can fill, as one Markdown document (sections at ``level``),
    linking the scaling ``plot`` image when given."""
    v = View(results)
    machines = {machine_line(c["machine"]) for c in v.cells.values()}
    h = "#" * level
    lines = [
        f"Suite `{results['suite']}`: {results['description']}. Data `{results['data']}`, linear "
        f"probes on `{results['task']}`. {len(v.cells)} cells, "
        f"{sum(c['seconds'] for c in v.cells.values()) / 60:.0f} minutes of running them.",
        "",
        f"Command: `{command(results, out_dir)}` (resumable: finished cells are reused; "
        "`--only GROUP` runs one group and what it builds on).",
        "",
        "Machine: " + "; ".join(sorted(machines) or [machine_line(results["machine"])]) + ".",
    ]
    if results.get("notes"):
        lines += ["", "Left out at this data size: " + "; ".join(results["notes"]) + "."]
    for title, section, group in SECTIONS:
        body = section(v)
        if body:
            lines += ["", f"{h} {title}", "", *body]
            if section is scaling and plot:
                lines += ["", f"![time against input size]({plot})"]
            lines += ["", f"Command: `{command(results, out_dir)} --only {group}`"]
    lines += [
        "",
        f"{h} Measured elsewhere",
        "",
        "004 Table 1 (B4B's cost for legitimate users and thieves) runs through real "
        '`sleuth serve` processes: `python bench/serve.py` (docs/benchmarks.md, "A defended '
        'API").',
    ]
    return "\n".join(lines)
