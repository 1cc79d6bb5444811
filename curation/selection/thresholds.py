"""Thresholds learned from reviewers: per metric ROC/AUC of score vs accept, and a policy cut."""

from __future__ import annotations

from typing import Any

import numpy as np

from db.catalog import Catalog
from db.report import report_frame
from db.selection import metric_names
from hfaid_core.settings.policy import LOWER_BETTER


def roc(values: np.ndarray, accepted: np.ndarray, lower_better: bool,
        target_precision: float) -> dict[str, Any]:
    """ROC points, AUC, and the loosest cut whose kept set reaches the target precision."""
    ok = np.isfinite(values)
    v, y = values[ok], accepted[ok].astype(bool)
    positives, negatives = int(y.sum()), int((~y).sum())
    result: dict[str, Any] = {"n": int(v.size), "accepted": positives, "rejected": negatives,
                              "lower_better": lower_better, "auc": None, "threshold": None,
                              "precision": None, "recall": None, "fpr": [0.0], "tpr": [0.0]}
    if positives == 0 or negatives == 0:
        return result
    key = -v if lower_better else v  # "keep if key >= cut" for both directions
    order = np.argsort(-key, kind="mergesort")
    key, y = key[order], y[order]
    tps, fps = np.cumsum(y), np.cumsum(~y)
    last = np.r_[np.flatnonzero(np.diff(key)), key.size - 1]  # one point per distinct value
    tp, fp = tps[last], fps[last]
    tpr = np.r_[0.0, tp / positives]
    fpr = np.r_[0.0, fp / negatives]
    result["auc"] = float(np.trapezoid(tpr, fpr))
    result["fpr"], result["tpr"] = fpr.tolist(), tpr.tolist()
    precision = tp / (tp + fp)
    reach = np.flatnonzero(precision >= target_precision)
    if reach.size:
        best = reach[-1]  # most images kept while still at the target precision
        cut = float(key[last[best]])
        result.update(threshold=-cut if lower_better else cut,
                      precision=float(precision[best]), recall=float(tp[best] / positives))
    return result


def roc_by_metric(catalog: Catalog, target_precision: float) -> list[dict[str, Any]]:
    """One ROC summary per known-direction metric, over images with a human verdict."""
    metrics = [m for m in metric_names(catalog) if m in LOWER_BETTER]
    frame = report_frame(catalog, metrics, only_reviewed=True)
    accepted = frame["human"] == 1 if metrics else np.array([], dtype=bool)
    out = []
    for metric in metrics:
        summary = roc(frame[metric], accepted, LOWER_BETTER[metric], target_precision)
        summary["metric"] = metric
        out.append(summary)
    out.sort(key=lambda r: -(r["auc"] or 0))
    return out


def policy_snippet(rocs: list[dict[str, Any]], target_precision: float) -> str:
    """TOML rules that reproduce each reachable threshold, ready for [policy.review]."""
    lines = [f"# thresholds learned from reviewer verdicts (target precision {target_precision:g})"]
    if not rocs or all(r["auc"] is None for r in rocs):
        lines.append("# not enough verdicts yet: need both accepted and rejected reviewed images")
        return "\n".join(lines)
    for r in rocs:
        if r["auc"] is None:
            continue
        head = (f"# {r['metric']}: AUC {r['auc']:.3f} on {r['n']} reviewed images "
                f"({r['accepted']} accepted, {r['rejected']} rejected)")
        if r["threshold"] is None:
            lines += [head, f"# {r['metric']}: no cut reaches precision {target_precision:g}", ""]
            continue
        bound = "max" if r["lower_better"] else "min"
        lines += [
            head + f"; keeps recall {r['recall']:.2f} at precision {r['precision']:.2f}",
            "[[policy.review.rules]]",
            f'metric = "{r["metric"]}"',
            f"{bound} = {r['threshold']:.6g}",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"
