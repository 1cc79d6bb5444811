"""Gather the report's numbers from the catalog and write report.html plus its PNG figures."""

from __future__ import annotations

import base64
import dataclasses
import html
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from curation.report.evaluation import evaluation_tables
from curation.report.montage import montage_png
from curation.report.page import render_page
from curation.report.plots import funnel_png, histogram_png, roc_png, stage1_histogram_png
from curation.selection.select import run_select
from curation.selection.thresholds import policy_snippet, roc
from db.catalog import Catalog
from db.outcomes import funnel
from db.report import paths_for, report_frame
from db.selection import metric_names
from hfaid_core.errors import HfaidError
from hfaid_core.settings.policy import LOWER_BETTER, PolicyConfig

# The paper's Table 3 columns, in its order.
TABLE3 = ("maniqa", "musiq", "clipiqa", "brisque", "niqe")
MONTAGE_N = 8


def build_report(
    catalog: Catalog, policy: PolicyConfig, out: Path, stage1: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Write out/report.html (self-contained) and out/*.png; returns what was written.

    `stage1` is stage 1's view of the pool (curation.stage1.clean.pool_view): its measures
    are drawn with their [clean] cuts in their own section, not among the scoring metrics.
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HfaidError(f"cannot create report folder {out}: {exc.strerror}") from None
    figures: dict[str, bytes] = {}
    sections: dict[str, Any] = {}

    counts = funnel(catalog)
    # A stage that filtered nothing ("not run": its metrics were never scored) is no funnel bar.
    stages = [(s["stage"], s["passed"]) for s in counts["stages"] if "not_run" not in s]
    if counts["images"]:
        stages = [("pool (images)", counts["images"])] + [s for s in stages if s[0] != "ingest"]
    figures["funnel.png"] = funnel_png(stages)
    sections["funnel"] = counts

    stage1_measures = set(stage1["measures"]) if stage1 else set()
    metrics = [m for m in metric_names(catalog) if m not in stage1_measures]
    frame = report_frame(catalog, metrics)
    sections["stage1"] = _stage1_figures(stage1, figures) if stage1 else []
    cuts = _stage_cuts(catalog, policy)
    sections["cuts"] = cuts
    shown = [m for m in metrics if m in LOWER_BETTER] + [
        m for m in metrics if m not in LOWER_BETTER
    ]
    for metric in shown:
        figures[f"hist_{_safe(metric)}.png"] = histogram_png(
            metric,
            frame[metric],
            LOWER_BETTER.get(metric),
            [(stage, v) for stage, m, v in cuts if m == metric],
        )
    figures.update(_montages(catalog, frame, [m for m in shown if m in LOWER_BETTER]))
    sections["table3"] = _table3(frame, metrics)
    sections["evaluation"] = evaluation_tables(catalog)
    sections["reviewers"] = _reviewers(catalog)
    sections["study"] = _study(catalog)
    rocs = _rocs(frame, metrics, policy.target_precision)
    sections["rocs"] = rocs
    sections["snippet"] = policy_snippet(rocs, policy.target_precision)
    if any(r["auc"] is not None for r in rocs):
        figures["roc.png"] = roc_png([r for r in rocs if r["auc"] is not None])
    sections["policy"] = dataclasses.asdict(policy)
    sections["generated"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    sections["catalog"] = str(catalog.path)

    for name, data in figures.items():
        (out / name).write_bytes(data)
    inline = {
        name: "data:image/png;base64," + base64.b64encode(data).decode()
        for name, data in figures.items()
    }
    page = out / "report.html"
    page.write_text(render_page(sections, inline, shown), encoding="utf-8")
    return {"html": page, "figures": sorted(figures), "metrics": shown}


def _stage1_figures(stage1: dict[str, Any], figures: dict[str, bytes]) -> list[dict]:
    """One histogram per [clean] cut, from stored measurements (nothing is decoded)."""
    shown = []
    for cut in stage1["cuts"]:
        values = stage1["values"][cut["measure"]]
        if not np.isfinite(values).any():
            continue
        name = f"stage1_{_safe(cut['cut'])}.png"
        figures[name] = stage1_histogram_png(cut, values, stage1["log"][cut["measure"]])
        shown.append({**cut, "figure": name})
    return shown


def _safe(metric: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in metric)


def _stage_cuts(catalog: Catalog, policy: PolicyConfig) -> list[tuple[str, str, float]]:
    """(stage, metric, value) for every resolved threshold of stages whose input exists."""
    cuts = []
    for stage in ("quality", "aesthetic", "review"):
        try:
            result = run_select(catalog, policy, stage)
        except HfaidError:  # that stage's input does not exist yet: nothing to mark
            continue
        for rule in result["rules"]:
            for bound in (rule["low"], rule["high"]):
                if bound is not None:
                    cuts.append((stage, rule["metric"], float(bound)))
    return cuts


def _montages(
    catalog: Catalog, frame: dict[str, np.ndarray], metrics: list[str]
) -> dict[str, bytes]:
    picks: dict[str, tuple[list[int], list[int]]] = {}
    for metric in metrics:
        values = frame[metric]
        idx = np.flatnonzero(np.isfinite(values))
        if idx.size == 0:
            continue
        key = values[idx] if LOWER_BETTER[metric] else -values[idx]
        order = idx[np.argsort(key, kind="stable")]
        picks[metric] = (order[:MONTAGE_N].tolist(), order[::-1][:MONTAGE_N].tolist())
    wanted = {frame["image_id"][i] for best, worst in picks.values() for i in best + worst}
    paths = paths_for(catalog, sorted(wanted)) if wanted else {}
    out = {}
    for metric, (best, worst) in picks.items():
        rows = [
            (label, [(paths.get(frame["image_id"][i]), float(frame[metric][i])) for i in ids])
            for label, ids in (("best", best), ("worst", worst))
        ]
        out[f"montage_{_safe(metric)}.png"] = montage_png(rows)
    return out


def _table3(frame: dict[str, np.ndarray], metrics: list[str]) -> dict[str, Any]:
    """Mean of the paper's Table 3 metrics for the selected set, the pool and each source."""
    columns = [m for m in TABLE3 if m in metrics]
    selected_flag = next(
        (
            f"passed_{s}"
            for s in ("review_queue", "aesthetic", "quality")
            if frame[f"passed_{s}"].any()
        ),
        None,
    )
    groups: list[tuple[str, np.ndarray]] = []
    if (frame["human"] == 1).any():
        groups.append(("accepted by reviewers", frame["human"] == 1))
    if selected_flag:
        groups.append((f"selected ({selected_flag.removeprefix('passed_')})", frame[selected_flag]))
    groups.append(("whole scored pool", np.ones(len(frame["image_id"]), dtype=bool)))
    for source in sorted(set(frame["source"].tolist())):
        groups.append((f"source: {source}", frame["source"] == source))
    rows = []
    for name, mask in groups:
        means = {}
        for m in columns:
            vals = frame[m][mask]
            vals = vals[np.isfinite(vals)]
            means[m] = float(vals.mean()) if vals.size else None
        rows.append({"set": name, "images": int(mask.sum()), **means})
    return {"columns": columns, "rows": rows}


def _reviewers(catalog: Catalog) -> dict[str, Any] | None:
    """Reviewer statistics from the review app's tables, once any vote exists."""
    from db.review import agreement, reviewer_stats

    stats = reviewer_stats(catalog)
    if not stats:
        return None
    return {"stats": stats, "agreement": agreement(catalog)}


def _study(catalog: Catalog) -> dict[str, Any] | None:
    """The newest metric study's per-metric agreement, once one exists."""
    from curation.selection.study import results
    from db.study import latest_study_id

    if latest_study_id(catalog) is None:
        return None
    study_id, rows = results(catalog, None)
    return {"study_id": study_id, "rows": rows}


def _rocs(frame: dict[str, np.ndarray], metrics: list[str], target: float) -> list[dict]:
    reviewed = frame["human"] >= 0
    if not reviewed.any():
        return []
    out = []
    for m in metrics:
        if m not in LOWER_BETTER:
            continue
        r = roc(frame[m][reviewed], frame["human"][reviewed] == 1, LOWER_BETTER[m], target)
        r["metric"] = m
        out.append(r)
    out.sort(key=lambda r: -(r["auc"] or 0))
    return out


def escape(value: Any) -> str:
    return html.escape(str(value))
