"""Catalog commands: init, funnel, scores, sql (sandboxed, read-only), runs."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import pyarrow as pa
import typer
from rich.table import Table

from db.migrate import latest_version, migrate
from db.outcomes import funnel as funnel_query
from db.query import run_readonly_query
from db.runs import list_runs
from db.scores import copy_latest_scores_parquet, latest_scores_wide
from hfaid.app import app
from hfaid.options import (
    CatalogOpt,
    ConfigOpt,
    JsonOpt,
    open_for_reading,
    process_alive,
    resolve,
)
from hfaid.output import stdout
from hfaid.tables import print_arrow_table, write_arrow_batches, write_arrow_table
from hfaid_core.errors import HfaidError
from hfaid_core.settings.ranges import check_value


@app.command()
def init(catalog: CatalogOpt = None, config: ConfigOpt = None) -> None:
    """Create a catalog, or upgrade an existing one to the current schema in place."""
    cat, _ = resolve(catalog, config)
    applied = migrate(cat)
    names = ", ".join(f"{m.version:04d}_{m.name}" for m in applied) or "none (already current)"
    stdout.print(f"catalog {cat.path}: schema version {latest_version()}; applied {names}")


@app.command()
def funnel(catalog: CatalogOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Per stage: seen, passed, rejected, errors, and counts per reason."""
    cat, _ = open_for_reading(catalog, config)
    result = funnel_query(cat)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    table = Table(title=f"funnel: {result['images']:,} images", title_justify="left")
    for column in ("stage", "seen", "passed", "rejected", "errors", "top reasons"):
        table.add_column(column, justify="left" if column in ("stage", "top reasons") else "right")
    for s in result["stages"]:
        reasons = ", ".join(f"{r} {n:,}" for r, n in list(s["reasons"].items())[:4])
        if "not_run" in s:  # every image went through unfiltered: say so, never "passed"
            reasons = f"{s['not_run']}: {s['passed_through']:,} went through unfiltered"
        table.add_row(
            s["stage"],
            f"{s['seen']:,}",
            "not run" if "not_run" in s else f"{s['passed']:,}",
            f"{s['rejected']:,}",
            f"{s['errors']:,}",
            reasons,
        )
    stdout.print(table)


class ScoreFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"
    parquet = "parquet"


@app.command()
def scores(
    format: Annotated[ScoreFormat, typer.Option("--format")] = ScoreFormat.jsonl,
    out: Annotated[
        Path | None, typer.Option("--out", help="File to write (default stdout).")
    ] = None,
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
) -> None:
    """One row per scored image, in the order they were first scored: image_id, path and one
    field per metric (its latest value), streamed (memory stays flat at any catalog size)."""
    if format is ScoreFormat.parquet and out is None:
        raise HfaidError("--format parquet needs --out FILE")
    cat, _ = open_for_reading(catalog, config)
    try:
        if out is not None:
            _check_writable(out)
        if format is ScoreFormat.parquet:  # DuckDB's COPY: no batch passes through Python
            copy_latest_scores_parquet(cat, out)
        else:  # the same CSV and JSONL as `hfaid sql`, to a file or stdout
            with latest_scores_wide(cat) as reader:
                write_arrow_batches(reader, format.value, out)
    except OSError as exc:  # the disk filled up, the folder went away...
        raise HfaidError(f"--out {out}: cannot write: {exc.strerror or exc}") from None


def _check_writable(out: Path) -> None:
    """--out must be a file that can be written (tried, not guessed: root passes every
    permission check, not a read-only mount): said in one line before any work."""
    if out.is_dir():
        raise HfaidError(f"--out {out} is a folder; name a file")
    existed = out.exists()
    try:
        open(out, "ab").close()  # noqa: SIM115 - a probe; the writer truncates it later
    except OSError as exc:
        raise HfaidError(f"--out {out}: cannot write: {exc.strerror or exc}") from None
    if not existed:
        out.unlink(missing_ok=True)


SQL_OUT_FORMATS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl"}


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="One query: SELECT, WITH, DESCRIBE, SHOW, "
                                              "SUMMARIZE or EXPLAIN.")],
    out: Annotated[Path | None, typer.Option(
        "--out", help="Write the result to FILE.parquet, FILE.csv or FILE.jsonl.")] = None,
    as_json: JsonOpt = False,
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Query the catalog: read-only, no file access, no settings, reviewers' secrets hidden."""
    cat, _ = open_for_reading(catalog, config)
    fmt = None
    if out is not None:
        fmt = SQL_OUT_FORMATS.get(out.suffix.lower())
        if fmt is None:
            raise HfaidError(f"--out {out}: name a .parquet, .csv or .jsonl file")
        if not out.parent.is_dir():
            raise HfaidError(f"--out {out}: folder {out.parent} does not exist")
    table: pa.Table = run_readonly_query(cat, query)
    if fmt is not None:
        write_arrow_table(table, fmt, out)
        stdout.print(f"wrote {table.num_rows:,} rows to {out}")
    elif as_json:
        write_arrow_table(table, "jsonl", None)
    else:
        print_arrow_table(table)


@app.command()
def runs(
    limit: Annotated[int, typer.Option(help="How many recent runs.")] = 20,
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Recent runs with their status and counts."""
    check_value(limit, 1, None, "--limit")
    cat, _ = open_for_reading(catalog, config)
    print_arrow_table(pa.Table.from_pylist(list_runs(cat, limit, process_alive)))
