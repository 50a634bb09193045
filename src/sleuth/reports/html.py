"""``report.html``: one self-contained page (plots embedded as data URIs), verdict first."""

from __future__ import annotations

import base64
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from sleuth.reports.evidence import Evidence
from sleuth.reports.plots import figure_for
from sleuth.verify.result import format_p
from sleuth.verify.verdict import DECISION_RULE

# What each test asks, in words an investigator can repeat to someone who is not a statistician.
MEANINGS = {
    "watermark-binomial": "The owner trained the victim to recognise secret rotations of its "
    "images. A copy made from the victim's outputs inherits that skill; an independent model "
    "should not have it. This counts how often the victim's secret classifier, reading the "
    "suspect's outputs, recovers the rotation, against chance (exact binomial test).",
    "watermark-ttest": "The same watermark trials as above, tested as the paper does (one-sample "
    "t-test of correct answers against chance).",
    "di-head-loss": "Dataset inference: a model derived from the victim should find the victim's "
    "training images more familiar than images it never saw. Familiarity is measured by the "
    "victim's own contrastive loss, lower on familiar images.",
    "di-gmm": "Dataset inference without the victim's head: a density model of the suspect's "
    "outputs on some training images should rate other training images as more likely than "
    "images the victim never saw.",
    "distance-l2": "A copy answers like the victim. This compares how far the suspect's outputs "
    "are from the victim's (Euclidean distance, after removing offset and scale) with how far "
    "independently trained models are.",
    "distance-cosine": "The same comparison with the angle between outputs (cosine distance).",
    "procrustes": "A thief could rotate his outputs to hide the resemblance. This first finds the "
    "best rotation and scale on held-out images, then measures how similar the suspect is to the "
    "victim on training images, against independent models.",
    "noise-sensitivity": "A copy trained on the victim's outputs tends to react less to tiny "
    "changes of the victim's training images than the victim itself. This compares how much the "
    "outputs move under small noise.",
}
VERDICT_WORDS = {
    "stolen": "The evidence supports that the suspect was derived from the victim.",
    "not_stolen": "No test found evidence that the suspect was derived from the victim.",
    "inconclusive": "The evidence does not allow either conclusion.",
}

_env = Environment(
    loader=PackageLoader("sleuth.reports", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def fmt_num(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def decision_word(test: dict[str, Any]) -> str:
    """Rejected, kept or not counted: the decision in one phrase."""
    if not test["counted"]:
        return "not counted"
    return "reject H0" if test["rejected"] else "keep H0"


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def render_html(
    evidence: Evidence, subjects: list[dict[str, Any]], signer: str | None = None
) -> str:
    """The report page for ``evidence`` whose inputs and evidence files are ``subjects``."""
    victims = []
    for i, victim in enumerate(evidence.result["victims"]):
        tests = []
        for test in victim["tests"]:
            png = figure_for(test, evidence.arrays.get((i, test["name"]), {}))
            tests.append(
                {
                    **test,
                    "decision": decision_word(test),
                    "meaning": MEANINGS.get(test["name"], test["alternative"]),
                    "plot": _data_uri(png) if png is not None else None,
                }
            )
        victims.append({**victim, "index": i, "tests": tests})
    return _env.get_template("report.html.j2").render(
        result=evidence.result,
        victims=victims,
        subjects=subjects,
        signer=signer,
        decision_rule=DECISION_RULE,
        verdict_words=VERDICT_WORDS,
        fmt_p=format_p,
        fmt_num=fmt_num,
    )
