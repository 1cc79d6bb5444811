"""Report figures (funnel, histograms with thresholds, ROC curves) rendered to PNG bytes."""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")  # files only: never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

STAGE_COLOURS = {"quality": "#d62728", "aesthetic": "#9467bd", "review": "#2ca02c"}


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def funnel_png(stages: list[tuple[str, int]]) -> bytes:
    """Centred horizontal bars, widest at the top, like the paper's Figure 2 funnel."""
    fig, ax = plt.subplots(figsize=(8, 0.55 * len(stages) + 1.2))
    top = max((n for _, n in stages), default=1) or 1
    for row, (name, count) in enumerate(stages):
        # Square-root widths keep a 1M -> 5k funnel readable at every level.
        width = max(math.sqrt(count / top), 0.01)
        ax.barh(row, width, left=-width / 2, color=plt.cm.viridis(row / max(len(stages), 2)))
        ax.text(0, row, f"{name}: {count:,}", ha="center", va="center", color="white"
                if width > 0.35 else "black", fontsize=10, fontweight="bold",
                bbox=None if width > 0.35 else {"facecolor": "white", "alpha": 0.8, "lw": 0})
    ax.set_ylim(len(stages) - 0.5, -0.5)
    ax.set_xlim(-0.55, 0.55)
    ax.axis("off")
    ax.set_title("Funnel: images remaining after each stage (bar width ~ sqrt(count))")
    return _png(fig)


def histogram_png(metric: str, values: np.ndarray, lower_better: bool | None,
                  cuts: list[tuple[str, float]]) -> bytes:
    """Distribution of one metric over all scored images, with each stage's thresholds."""
    fig, ax = plt.subplots(figsize=(4.6, 3.0))
    finite = values[np.isfinite(values)]
    ax.hist(finite, bins=60, color="#4c72b0", alpha=0.85)
    for stage, value in cuts:
        ax.axvline(value, color=STAGE_COLOURS.get(stage, "black"), lw=1.8, ls="--",
                   label=f"{stage}: {value:.4g}")
    direction = "" if lower_better is None else (" (lower is better)" if lower_better
                                                 else " (higher is better)")
    ax.set_title(f"{metric}{direction}, n={finite.size:,}", fontsize=10)
    if cuts:
        ax.legend(fontsize=8)
    ax.tick_params(labelsize=8)
    return _png(fig)


def stage1_histogram_png(cut: dict, values: np.ndarray, log: bool) -> bytes:
    """One stage-1 measure over the decoded pool, with its [clean] cut and how many it fails."""
    fig, ax = plt.subplots(figsize=(4.6, 3.0))
    finite = values[np.isfinite(values)]
    cut_at = cut["value"]
    if log:  # variances and ratios spread over decades: log bins, zeros at the floor
        floor = max(float(finite[finite > 0].min()) if (finite > 0).any() else 1e-3, 1e-3)
        finite = np.maximum(finite, floor)
        top = max(float(finite.max()) if finite.size else floor, floor * 10)
        bins = np.geomspace(floor, top * 1.0001, 61)
        ax.set_xscale("log")
    else:
        bins = 60
    ax.hist(finite, bins=bins, color="#4c72b0", alpha=0.85)
    if math.isfinite(cut_at) and not (log and cut_at <= 0):
        ax.axvline(cut_at, color="#d62728", lw=1.8, ls="--",
                   label=f"{cut['check']} {cut['fails_when']} {cut_at:.4g} ({cut['rule']})")
        ax.legend(fontsize=8)
    ax.set_title(f"{cut['measure']} [{cut['cut']}], n={finite.size:,}, fails {cut['fails']:,}",
                 fontsize=9)
    ax.tick_params(labelsize=8)
    return _png(fig)


def roc_png(curves: list[dict]) -> bytes:
    """ROC of each metric's score against the human accept label."""
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    for c in curves:
        ax.plot(c["fpr"], c["tpr"], label=f"{c['metric']} AUC {c['auc']:.2f}")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.set_title("Score vs reviewer accept")
    ax.legend(fontsize=8)
    return _png(fig)
