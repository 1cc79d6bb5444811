"""`hfaid select --stage quality|aesthetic|review [--dry-run]` and `hfaid select --suggest`."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from curation.selection.select import format_counts, input_size, run_select
from hfaid.app import app
from hfaid.options import (
    CatalogOpt,
    ConfigOpt,
    JsonOpt,
    open_for_reading,
    open_for_writing,
    recorded_run,
)
from hfaid.output import stdout
from hfaid_core.errors import HfaidError
from hfaid_core.settings.policy import INPUT_STAGE


class SelectStage(StrEnum):
    quality = "quality"
    aesthetic = "aesthetic"
    review = "review"


@app.command()
def select(
    stage: Annotated[SelectStage | None, typer.Option(help="Which funnel stage to select.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count; write nothing.")] = False,
    suggest: Annotated[
        bool,
        typer.Option(
            "--suggest", help="Print thresholds learned from reviewer votes as a policy snippet."
        ),
    ] = False,
    target_precision: Annotated[
        float | None,
        typer.Option(help="Precision the suggested thresholds aim at [default: config]."),
    ] = None,
    if_available: Annotated[
        bool,
        typer.Option("--if-available", help="Exit 0 with a note when the stage's input is empty."),
    ] = False,
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Apply the [policy] rules of one stage to stored scores; re-tuning never re-scores."""
    if suggest:
        from curation.selection.thresholds import policy_snippet, roc_by_metric

        cat, cfg = open_for_reading(catalog, config)
        target = target_precision if target_precision is not None else cfg.policy.target_precision
        rocs = roc_by_metric(cat, target)
        typer.echo(json.dumps(rocs, indent=2) if as_json else policy_snippet(rocs, target))
        return
    if stage is None:
        raise HfaidError("give --stage quality|aesthetic|review (or --suggest)")
    if if_available:
        cat, cfg = open_for_reading(catalog, config)
        if not input_size(cat, stage.value):
            stdout.print(
                f"note: no images passed {INPUT_STAGE[stage.value]!r} yet; "
                f"`select --stage {stage.value}` skipped"
            )
            return
    if dry_run:
        cat, cfg = open_for_reading(catalog, config)
        result = run_select(cat, cfg.policy, stage.value)
    else:
        cat, cfg = open_for_writing(catalog, config)
        settings = {"stage": stage.value, "policy": cfg.section("policy")[stage.value]}
        with recorded_run(cat, f"select {stage.value}", settings) as run:
            result = run_select(cat, cfg.policy, stage.value, run.run_id)
            run.counts = {k: result[k] for k in ("input", "passed", "rejected", "replaced")}
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
        return
    verb = "would pass" if dry_run else "passed"
    table = Table(
        title=f"select --stage {stage.value}{' (dry run: nothing written)' if dry_run else ''}: "
        f"{result['input']:,} images passed {result['input_stage']}",
        title_justify="left",
    )
    for column in ("rule", "keeps", "pass alone", "pass so far"):
        table.add_column(column, justify="left" if column in ("rule", "keeps") else "right")
    for row in format_counts(result):
        table.add_row(*row)
    stdout.print(table)
    for note in result["notes"]:
        stdout.print(f"note: {note}", markup=False)
    stdout.print(
        f"{result['passed']:,} {verb} -> stage {result['output_stage']!r}; "
        f"{result['rejected']:,} rejected"
    )
    if not dry_run:
        top = ", ".join(f"{r} {n:,}" for r, n in list(result["reasons"].items())[:5])
        stdout.print(
            f"reject reasons: {top or 'none'}; previous outcomes replaced: {result['replaced']:,}"
        )
