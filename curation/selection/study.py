"""Metric studies: build the paper's blind best/worst-N study and judge metrics by the votes."""

from __future__ import annotations

from typing import Any

from db.catalog import Catalog
from db.study import create_study, latest_study_id, study_results
from hfaid_core.errors import HfaidError
from hfaid_core.settings.policy import LOWER_BETTER


def parse_metrics(text: str) -> dict[str, bool]:
    """"niqe,maniqa" -> {metric: lower_better}; unknown names are an error."""
    names = [m.strip() for m in text.split(",") if m.strip()]
    if not names:
        raise HfaidError("--metrics needs at least one metric, e.g. --metrics niqe,maniqa,clipiqa")
    unknown = [m for m in names if m not in LOWER_BETTER]
    if unknown:
        raise HfaidError(f"unknown metric(s) {', '.join(unknown)}; known: "
                         f"{', '.join(sorted(LOWER_BETTER))}")
    return {m: LOWER_BETTER[m] for m in dict.fromkeys(names)}


def new_study(catalog: Catalog, metrics: str, n: int, stage: str, seed: int,
              name: str | None, run_id: int | None) -> dict[str, Any]:
    """Create a study over images that passed `stage` ("all" = every scored image)."""
    if n < 1:
        raise HfaidError(f"--n must be >= 1, got {n}")
    chosen = parse_metrics(metrics)
    input_stage = None if stage == "all" else stage
    label = name or f"{', '.join(chosen)}: best/worst {n}"
    return create_study(catalog, label, chosen, n, input_stage, seed, run_id)


def resolve_study(catalog: Catalog, study_id: int | None) -> int:
    """The given study id, else the newest study."""
    if study_id is not None:
        return study_id
    latest = latest_study_id(catalog)
    if latest is None:
        raise HfaidError("no study yet; create one with `hfaid study create --metrics ...`")
    return latest


def verdict(row: dict[str, Any], min_votes: int = 20) -> str:
    """Plain words for one metric's agreement."""
    if row["agreement"] is None:
        return "no votes yet"
    votes = row["best_votes"] + row["worst_votes"]
    strength = ("reviewers agree" if row["agreement"] >= 0.75 else
                "weak agreement" if row["agreement"] >= 0.6 else "reviewers disagree")
    return strength + (f" (only {votes} votes)" if votes < min_votes else "")


def results(catalog: Catalog, study_id: int | None) -> tuple[int, list[dict[str, Any]]]:
    sid = resolve_study(catalog, study_id)
    rows = study_results(catalog, sid)
    for row in rows:
        row["verdict"] = verdict(row)
    return sid, rows
