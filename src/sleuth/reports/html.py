"""``report.html``: one self-contained page (plots embedded as data URIs), verdict first."""

from __future__ import annotations

import base64
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from sleuth.reports.evidence import Evidence
from sleuth.reports.plots import figure_for
from sleuth.verify.evidence import TEST_INFO
from sleuth.verify.result import format_p
from sleuth.verify.verdict import DECISION_RULE

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
            info = TEST_INFO.get(test["name"])
            tests.append(
                {
                    **test,
                    "decision": decision_word(test),
                    "meaning": info.meaning if info else test["alternative"],
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
