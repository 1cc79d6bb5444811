"""`hfaid select`: apply one stage of the funnel policy to stored scores (never re-scores)."""

from __future__ import annotations

from typing import Any

from curation.selection.policy import describe_rule, is_lower_better, stage_policy
from db.catalog import Catalog
from db.selection import FusionSpec, RuleSpec, evaluate, stage_pass_count
from hfaid_core.errors import HfaidError
from hfaid_core.settings.policy import INPUT_STAGE, OUTPUT_STAGE, PolicyConfig, StagePolicy


def specs(sp: StagePolicy) -> tuple[list[RuleSpec], FusionSpec | None]:
    """The policy section as db-level rule specs."""
    rules = [
        RuleSpec(metric=r.metric, lower_better=is_lower_better(r), min=r.min, max=r.max,
                 keep_fraction=r.keep_fraction, top_k=r.top_k, weight=r.weight,
                 label=f"rule {i}: {describe_rule(r)}")
        for i, r in enumerate(sp.rules, 1)
    ]
    fusion = (FusionSpec(sp.keep_top_k, sp.keep_fraction) if sp.combine == "rank_fusion" else None)
    return rules, fusion


def run_select(
    catalog: Catalog, policy: PolicyConfig, stage: str, run_id: int | None = None
) -> dict[str, Any]:
    """Dry-run counts (run_id None) or write the stage's outcomes; returns the counts."""
    sp = stage_policy(policy, stage)
    rules, fusion = specs(sp)
    write = None if run_id is None else (OUTPUT_STAGE[stage], run_id)
    result = evaluate(catalog, INPUT_STAGE[stage], rules, fusion, write)
    if result["input"] == 0:
        raise HfaidError(
            f"no images passed stage {INPUT_STAGE[stage]!r}, the input of `select --stage {stage}`"
            f" (run the earlier stages first; `hfaid funnel` shows where images are)"
        )
    result["stage"] = stage
    result["output_stage"] = OUTPUT_STAGE[stage]
    result["notes"] = notes(result, sp)
    return result


def notes(result: dict[str, Any], sp: StagePolicy) -> list[str]:
    """Plain-language remarks about rules that could not apply."""
    out = []
    for metric in result["skipped_metrics"]:
        out.append(
            f"no image in the input has a {metric} score: its rules were skipped "
            f"(score it first, or remove the rule from [policy.{result['stage']}])"
        )
    if sp.combine == "rank_fusion" and not result["fusion"]:
        out.append("rank fusion skipped: none of its metrics is scored in the input, so it "
                   "keeps every image that passes the other rules")
    if not result["rules"] and not result["fusion"]:
        out.append("no rule applied: every input image passes this stage unchanged")
    for metric, have in result["present"].items():
        if have and have < result["input"] and metric not in result["skipped_metrics"]:
            out.append(f"{result['input'] - have:,} input images lack a {metric} score: "
                       f"they are rejected as {metric}_missing")
    return out


def format_counts(result: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Rows (rule, bounds, passing alone, passing all rules so far) for the terminal."""
    rows = []
    for r in result["rules"]:
        bound = " and ".join(
            b for b in ((f">= {r['low']:.4g}" if r["low"] is not None else ""),
                        (f"<= {r['high']:.4g}" if r["high"] is not None else "")) if b
        ) or "present"
        rows.append((r["label"], f"{r['metric']} {bound}", f"{r['passed_alone']:,}",
                     f"{r['passed_cumulative']:,}"))
    if result["fusion"]:
        f = result["fusion"]
        rows.append((f"rank fusion of {', '.join(f['metrics'])}", f"best {f['keep']:,}",
                     f"{f['eligible']:,} eligible", f"{result['passed']:,}"))
    return rows


def input_size(catalog: Catalog, stage: str) -> int:
    """How many images passed the stage that feeds `select --stage stage`."""
    return stage_pass_count(catalog, INPUT_STAGE[stage])
