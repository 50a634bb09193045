"""One figure per test: the per-sample evidence on the left, the suspect among the independent
references on the right. PNG bytes, drawn with matplotlib's Agg canvas (no display needed)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from statsmodels.stats.proportion import proportion_confint

# Per-sample arrays drawn as overlaid histograms, in this order, with these labels.
HISTOGRAMS = {
    "private_loss": "private (trained-on)",
    "public_loss": "public (held-out)",
    "private_loglik": "private (trained-on)",
    "public_loglik": "public (held-out)",
    "suspect": "suspect",
    "reference_mean": "references' mean",
    "suspect_spread": "suspect",
    "victim_spread": "victim",
}
X_LABELS = {
    "private_loss": "contrastive loss through the victim's head (lower: more familiar)",
    "private_loglik": "log-likelihood under the suspect's mixture (higher: more familiar)",
    "suspect": "per-image value, private images",
    "suspect_spread": "relative spread under input noise",
}
COLOURS = ("#c0392b", "#7f8c8d")


def _watermark_panel(ax, correct: np.ndarray, test: dict[str, Any]) -> None:
    n, k = len(correct), int(np.sum(correct))
    low, high = proportion_confint(k, n, alpha=0.05, method="wilson")
    acc = k / n
    chance = acc - test["effect"] if test["effect"] is not None else None
    # the interval's ends can miss acc by rounding when every or no trial is correct
    error = [[max(acc - low, 0.0)], [max(high - acc, 0.0)]]
    ax.bar([0], [acc], width=0.4, color=COLOURS[0], yerr=error, capsize=6)
    ax.set_xlim(-1, 1)
    ax.set_xticks([0], ["suspect"])
    if chance is not None:
        ax.axhline(chance, color="black", linestyle="--", label=f"chance {chance:.2f}")
        ax.legend(loc="lower right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("watermark accuracy (95 % Wilson interval)")
    ax.set_title(f"{k} of {n} rotations recovered")


def _histogram_panel(ax, arrays: dict[str, np.ndarray]) -> None:
    shown = [name for name in HISTOGRAMS if name in arrays]
    values = np.concatenate([np.asarray(arrays[name], np.float64) for name in shown])
    bins = np.histogram_bin_edges(values[np.isfinite(values)], bins=30)
    for colour, name in zip(COLOURS, shown, strict=False):
        ax.hist(arrays[name], bins=bins, alpha=0.55, color=colour, label=HISTOGRAMS[name])
    ax.set_xlabel(X_LABELS.get(shown[0], "value"))
    ax.set_ylabel("samples")
    ax.legend()
    ax.set_title("per-sample evidence")


def _calibration_panel(ax, test: dict[str, Any], references: np.ndarray) -> None:
    rng = np.random.default_rng(0)  # horizontal jitter only, for legibility
    refs = references[np.isfinite(references)]
    ax.scatter(rng.uniform(-0.15, 0.15, len(refs)), refs, color=COLOURS[1], label="references")
    if test["score"] is not None:
        ax.scatter([0], [test["score"]], marker="D", s=80, color=COLOURS[0], label="suspect")
    ax.set_xlim(-1, 1)
    ax.set_xticks([])
    side = "higher" if test["direction"] == 1 else "lower"
    ax.set_ylabel(f"score ({side} is more suspicious)")
    ax.set_title("suspect among references")
    ax.legend(loc="best")


def figure_for(test: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes | None:
    """PNG of one test's evidence, or None when it has nothing to draw (it did not run)."""
    references = np.asarray(arrays.get("reference_scores", []), np.float64)
    has_samples = "correct" in arrays or any(name in arrays for name in HISTOGRAMS)
    if not has_samples and not len(references):
        return None
    fig = Figure(figsize=(9, 3.2), dpi=80, layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=(2, 1))
    if "correct" in arrays:
        _watermark_panel(left, np.asarray(arrays["correct"]), test)
    elif has_samples:
        _histogram_panel(left, arrays)
    else:
        left.set_axis_off()
        left.text(0.5, 0.5, "no per-sample evidence", ha="center", va="center")
    if len(references):
        _calibration_panel(right, test, references)
    else:
        right.set_axis_off()
        right.text(0.5, 0.5, "no references", ha="center", va="center")
    fig.suptitle(test["name"])
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    return buffer.getvalue()
