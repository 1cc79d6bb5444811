"""`hfaid study create|list|results`: blind best/worst-N metric studies for reviewers."""

from __future__ import annotations

import json
from typing import Annotated

import pyarrow as pa
import typer

from curation.selection.study import new_study, results
from db.study import list_studies
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
from hfaid.tables import print_arrow_table

study_app = typer.Typer(
    help="Metric studies: which metric do reviewers agree with?", no_args_is_help=True
)
app.add_typer(study_app, name="study")


@study_app.command("create")
def create(
    metrics: Annotated[
        str, typer.Option(help="Comma-separated metrics, e.g. niqe,maniqa,clipiqa.")
    ],
    n: Annotated[int, typer.Option(help="Best and worst N images per metric.")] = 200,
    stage: Annotated[
        str,
        typer.Option(help="Draw from images that passed this stage ('all' = every scored image)."),
    ] = "dedup",
    seed: Annotated[int, typer.Option(help="Shuffle seed.")] = 0,
    name: Annotated[str | None, typer.Option(help="A label for the study.")] = None,
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Build a study: best and worst N per metric, shuffled, metric names hidden from reviewers."""
    cat, _ = open_for_writing(catalog, config)
    with recorded_run(cat, "study create", {"metrics": metrics, "n": n, "stage": stage}) as run:
        made = new_study(cat, metrics, n, stage, seed, name, run.run_id)
        run.counts = made
    stdout.print(
        f"study {made['study_id']}: {made['items']:,} images to judge "
        f"({made['members']:,} list places); reviewers find it under 'Study' in the app"
    )


@study_app.command("list")
def list_(catalog: CatalogOpt = None, config: ConfigOpt = None) -> None:
    """Every study with its size, votes and reviewers."""
    cat, _ = open_for_reading(catalog, config)
    print_arrow_table(pa.Table.from_pylist(list_studies(cat)))


@study_app.command("results")
def results_(
    study: Annotated[int | None, typer.Option(help="Study id [default: the newest].")] = None,
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Per metric: accept rate of its best and worst lists and how often reviewers agree."""
    cat, _ = open_for_reading(catalog, config)
    sid, rows = results(cat, study)
    if as_json:
        typer.echo(json.dumps({"study_id": sid, "metrics": rows}, indent=2, default=str))
        return
    stdout.print(f"study {sid}: agreement = (accepted best + rejected worst) / votes; 0.5 = chance")
    table = [
        {
            "metric": r["metric"],
            "agreement": _pct(r["agreement"]),
            "best accepted": _pct(r["best_accept_rate"]),
            "worst accepted": _pct(r["worst_accept_rate"]),
            "votes": r["best_votes"] + r["worst_votes"],
            "reviewers": r["reviewers"],
            "verdict": r["verdict"],
        }
        for r in rows
    ]
    print_arrow_table(pa.Table.from_pylist(table))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"
