"""Selection as SQL over stored scores: resolve thresholds, count per rule, write outcomes."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from db.catalog import Catalog, in_transaction
from db.outcomes import NO_RULE_APPLIED
from db.scores import latest_columns, wanted_columns
from db.sqltext import sql_literal
from db.stages import live_only


@dataclass(frozen=True)
class RuleSpec:
    """One rule on one metric; quantile and top-k cuts are resolved to values on the input."""

    metric: str
    lower_better: bool
    min: float | None = None
    max: float | None = None
    keep_fraction: float | None = None
    top_k: int | None = None
    weight: float = 1.0
    label: str = ""


@dataclass(frozen=True)
class FusionSpec:
    """Rank fusion: weighted mean of direction-signed z-scores, keep the best k or fraction."""

    keep_top_k: int | None = None
    keep_fraction: float | None = None


def _num(value: float) -> str:
    return repr(float(value))


def _load_input(con, input_stage: str | None, metrics: list[str]) -> None:
    """TEMP sel(image_id, m0..mN): the stage's input set with the latest value per metric
    (NaN counts as missing), read from the wide table the score writes keep."""
    column = latest_columns(con)
    picked = wanted_columns(column, metrics, "l.")
    # Images without a path any more (their file now holds other content) are no input.
    live = live_only(con)
    if input_stage is None:
        source = f"SELECT image_id FROM scores_latest WHERE true {live}"
        params: list[Any] = []
    else:  # outcomes hold one row per (image, stage)
        source = f"SELECT image_id FROM stage_outcomes WHERE stage = ? AND status = 'pass' {live}"
        params = [input_stage]
    con.execute("DROP TABLE IF EXISTS sel")
    # Images without any wanted score keep NULLs via the LEFT JOIN.
    con.execute(
        f"CREATE TEMP TABLE sel AS SELECT i.image_id, {picked} FROM ({source}) i "
        "LEFT JOIN scores_latest l USING (image_id)",
        params,
    )


def _resolve(
    con, rules: list[RuleSpec], index: dict[str, int]
) -> list[tuple[float | None, float | None]]:
    """Per rule the (low, high) bounds an image must lie within; None = unbounded."""
    quantiles = []
    for r in rules:
        if r.keep_fraction is not None:
            q = r.keep_fraction if r.lower_better else 1.0 - r.keep_fraction
            quantiles.append(f"quantile_cont(m{index[r.metric]}, {_num(q)})")
        else:
            quantiles.append("NULL")
    qrow = con.execute(f"SELECT {', '.join(quantiles) or 'NULL'} FROM sel").fetchone()
    qrow = qrow or [None] * len(rules)  # no aggregate and no rows: nothing to resolve
    bounds = []
    for r, qv in zip(rules, qrow, strict=False):
        low, high = r.min, r.max
        cuts: list[float] = []
        if r.keep_fraction is not None and qv is not None and r.keep_fraction < 1:
            cuts.append(qv)
        if r.top_k is not None:
            col = f"m{index[r.metric]}"
            order = "ASC" if r.lower_better else "DESC"
            kth = con.execute(
                f"SELECT {col} FROM sel WHERE {col} IS NOT NULL ORDER BY {col} {order} "
                f"LIMIT 1 OFFSET {int(r.top_k) - 1}"
            ).fetchone()
            if kth is not None:  # fewer than k images: the cut keeps all of them
                cuts.append(kth[0])
        for cut in cuts:
            if r.lower_better:
                high = cut if high is None else min(high, cut)
            else:
                low = cut if low is None else max(low, cut)
        bounds.append((low, high))
    return bounds


def _rule_sql(r: RuleSpec, col: str, low: float | None, high: float | None) -> tuple[str, str, str]:
    """(pass condition, reject reason expression, detail expression) for one rule."""
    conds = [f"{col} IS NOT NULL"]
    if low is not None:
        conds.append(f"{col} >= {_num(low)}")
    if high is not None:
        conds.append(f"{col} <= {_num(high)}")
    kind = "top_k" if r.top_k is not None else "best_fraction" if r.keep_fraction else "threshold"
    below = f"{r.metric}_below_{'min' if kind == 'threshold' else kind}"
    above = f"{r.metric}_above_{'max' if kind == 'threshold' else kind}"
    reason = (
        f"CASE WHEN {col} IS NULL THEN {sql_literal(r.metric + '_missing')} "
        + (f"WHEN {col} < {_num(low)} THEN {sql_literal(below)} " if low is not None else "")
        + f"ELSE {sql_literal(above)} END"
    )
    bound = " and ".join(
        b
        for b in (
            (f">= {low:.6g}" if low is not None else ""),
            (f"<= {high:.6g}" if high is not None else ""),
        )
        if b
    )
    label = r.label.replace("'", "").replace("%", "%%")  # printf format text, SQL literal
    detail = (
        f"CASE WHEN {col} IS NULL THEN {sql_literal('no ' + r.metric + ' score')} "
        f"ELSE printf('{r.metric}=%.6g, needs {bound} ({label})', {col}) END"
    )
    return " AND ".join(conds), reason, detail


def evaluate(
    catalog: Catalog,
    input_stage: str | None,
    rules: list[RuleSpec],
    fusion: FusionSpec | None = None,
    write: tuple[str, int] | None = None,
) -> dict[str, Any]:
    """Count what each rule keeps; with write=(stage, run_id) also replace that stage's outcomes.

    Rules with a cut must all pass (the first failing rule names the reason); with `fusion`,
    survivors are ranked by the weighted mean of z-scores of every rule with weight > 0.
    """
    metrics = list(dict.fromkeys(r.metric for r in rules))
    index = {m: i for i, m in enumerate(metrics)}
    with catalog.connect(read_only=write is None) as con:
        _load_input(con, input_stage, metrics)
        present = con.execute(
            "SELECT count(*)" + "".join(f", count(m{i})" for i in range(len(metrics))) + " FROM sel"
        ).fetchone()
        total = present[0]
        if total == 0:  # nothing reached this stage: the caller explains, nothing is written
            return {
                "input_stage": input_stage,
                "input": 0,
                "present": {},
                "skipped_metrics": [],
                "rules": [],
                "fusion": None,
                "passed": 0,
                "rejected": 0,
            }
        # A metric nobody in the input has was never scored here: skip its rules, say so.
        skipped = [m for i, m in enumerate(metrics) if total and not present[i + 1]]
        rules = [r for r in rules if r.metric not in skipped]
        bounds = _resolve(con, rules, index)
        gates = [
            (r, b)
            for r, b in zip(rules, bounds, strict=True)
            if fusion is None
            or any(v is not None for v in (r.min, r.max, r.keep_fraction, r.top_k))
        ]
        parts = [(r, b, *_rule_sql(r, f"m{index[r.metric]}", *b)) for r, b in gates]
        fused_rules = [r for r in rules if fusion is not None and r.weight > 0]
        if not fused_rules:  # nothing scored to rank by: a top-k would be an arbitrary cut
            fusion = None
        for r in fused_rules:  # a fused metric must be present even without a cut of its own
            if r not in [g[0] for g in gates]:
                parts.append((r, (None, None), *_rule_sql(r, f"m{index[r.metric]}", None, None)))
        alone = [f"count(*) FILTER (WHERE {p[2]})" for p in parts]
        cumulative = [
            f"count(*) FILTER (WHERE {' AND '.join(p[2] for p in parts[: i + 1])})"
            for i in range(len(parts))
        ]
        counts = (
            con.execute(f"SELECT {', '.join(alone + cumulative) or 'NULL'} FROM sel").fetchone()
            if parts
            else ()
        )
        gate_ok = " AND ".join(p[2] for p in parts) or "true"
        eligible = counts[-1] if parts else total
        keep = eligible
        fused_expr = "NULL"
        if fusion is not None:
            keep = (
                fusion.keep_top_k
                if fusion.keep_top_k is not None
                else math.ceil(fusion.keep_fraction * eligible)
            )
            keep = min(keep, eligible)
            fused_expr = _fused_sql(con, fused_rules, index, gate_ok)
        result: dict[str, Any] = {
            "input_stage": input_stage,
            "input": total,
            "present": {m: present[i + 1] for i, m in enumerate(metrics)},
            "skipped_metrics": skipped,
            "rules": [
                {
                    "label": p[0].label,
                    "metric": p[0].metric,
                    "lower_better": p[0].lower_better,
                    "low": p[1][0],
                    "high": p[1][1],
                    "passed_alone": counts[i],
                    "passed_cumulative": counts[len(parts) + i],
                }
                for i, p in enumerate(parts)
            ],
            "fusion": None
            if fusion is None
            else {"metrics": [r.metric for r in fused_rules], "eligible": eligible, "keep": keep},
            "passed": keep,
            "rejected": total - keep,
        }
        if write is None:
            return result
        stage, run_id = write
        reason = (
            "CASE "
            + " ".join(f"WHEN NOT ({p[2]}) THEN {p[3]}" for p in parts)
            + (" WHEN frank > " + str(int(keep)) + " THEN 'below_fusion_cut'" if fusion else "")
            + " END"
        )
        detail = (
            "CASE "
            + " ".join(f"WHEN NOT ({p[2]}) THEN {p[4]}" for p in parts)
            + (
                f" ELSE printf('fused z %.3f, rank %d of {eligible}', fused, frank)"
                if fusion
                else ""
            )
            + " END"
        )
        if not parts and not fusion:  # the funnel reads this as "not run" (db/outcomes.py)
            unscored = f" (no scores for {', '.join(skipped)})" if skipped else ""
            reason, detail = "NULL", sql_literal(NO_RULE_APPLIED + unscored)
        frank = (
            "CASE WHEN ok THEN row_number() OVER (PARTITION BY ok ORDER BY fused DESC "
            "NULLS LAST, image_id) END"
            if fusion
            else "NULL"
        )
        with in_transaction(con):
            con.execute(
                f"""
                CREATE TEMP TABLE batch AS
                WITH f AS (SELECT *, ({gate_ok}) AS ok, {fused_expr} AS fused FROM sel),
                r AS (SELECT *, {frank} AS frank FROM f)
                SELECT image_id, {sql_literal(stage)} AS stage, rs AS reason, dt AS detail,
                       CASE WHEN rs IS NULL THEN 'pass' ELSE 'reject' END AS status
                FROM (SELECT image_id, {reason} AS rs, {detail} AS dt FROM r)
                """
            )
            # The batch covers the stage's whole input, so replacing the stage wholesale is both
            # cheaper than a keyed delete and drops outcomes of images no longer in the input.
            result["replaced"] = con.execute(
                "DELETE FROM stage_outcomes WHERE stage = ?", [stage]
            ).fetchone()[0]
            result["reasons"] = dict(
                con.execute(
                    "SELECT reason, count(*) FROM batch WHERE reason IS NOT NULL "
                    "GROUP BY 1 ORDER BY 2 DESC"
                ).fetchall()
            )
            result["written"] = con.execute(
                "INSERT INTO stage_outcomes (image_id, stage, status, reason, detail, run_id) "
                "SELECT image_id, stage, status, reason, detail, ? FROM batch",
                [run_id],
            ).fetchone()[0]
            con.execute("DROP TABLE batch")
            con.execute("DROP TABLE sel")
    return result


def _fused_sql(con, rules: list[RuleSpec], index: dict[str, int], gate_ok: str) -> str:
    """Weighted mean of direction-signed z-scores, with mean/sd taken over the gate survivors."""
    if not rules:
        return "0.0"
    stats = con.execute(
        "SELECT "
        + ", ".join(f"avg(m{index[r.metric]}), stddev_pop(m{index[r.metric]})" for r in rules)
        + f" FROM sel WHERE {gate_ok}"
    ).fetchone()
    terms, total_w = [], 0.0
    for i, r in enumerate(rules):
        mean, sd = stats[2 * i], stats[2 * i + 1]
        if mean is None or not sd:  # constant or empty: carries no ranking information
            continue
        sign = -1.0 if r.lower_better else 1.0
        terms.append(f"{_num(sign * r.weight / sd)} * (m{index[r.metric]} - {_num(mean)})")
        total_w += r.weight
    if not terms:
        return "0.0"
    return f"(({' + '.join(terms)}) / {_num(total_w)})"


def metric_values(catalog: Catalog, metric: str, stage: str | None = None) -> list[float]:
    """Latest value of one metric for every image (that passed `stage`), for histograms."""
    with catalog.connect(read_only=True) as con:
        _load_input(con, stage, [metric])
        return [r[0] for r in con.execute("SELECT m0 FROM sel WHERE m0 IS NOT NULL").fetchall()]


def metric_names(catalog: Catalog) -> list[str]:
    """Every metric with at least one stored score."""
    with catalog.connect(read_only=True) as con:
        return list(latest_columns(con))


def stage_pass_count(catalog: Catalog, stage: str) -> int:
    """Images whose latest outcome for `stage` is pass."""
    with catalog.connect(read_only=True) as con:
        return con.execute(
            "SELECT count(*) FROM stage_outcomes WHERE stage = ? AND status = 'pass' "
            + live_only(con), [stage]
        ).fetchone()[0]
