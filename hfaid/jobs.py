"""How a per-image job ends: errors and their top reasons in the summary and in --json, and exit
code 3 when every image it tried failed (a job that did nothing useful never looks like success)."""

from __future__ import annotations

import json
from typing import Any

import typer

from hfaid.output import print_summary, stdout

EXIT_ALL_FAILED = 3


class AllFailedError(Exception):
    """Every image a per-image job tried failed; the message is the one line printed."""


def error_rows(errors: dict[str, Any]) -> dict[str, Any]:
    """Summary rows: the error count, then one row per top reason."""
    rows: dict[str, Any] = {"errors": errors["errors"]}
    rows.update({f"  error: {r}": n for r, n in errors["top_reasons"].items()})
    return rows


def finish_job(job: str, title: str, rows: dict[str, Any], counts: dict[str, Any],
               errors: dict[str, Any], as_json: bool, notes: tuple[str, ...] = ()) -> None:
    """Print the summary (or `counts` as JSON) and notes, errors included; raise AllFailedError
    when every image the job tried failed."""
    all_failed = errors["seen"] > 0 and errors["errors"] == errors["seen"]
    if as_json:
        typer.echo(json.dumps({**counts, "errors": errors["errors"],
                               "top_error_reasons": errors["top_reasons"],
                               "error_examples": errors["examples"],
                               "all_failed": all_failed}, default=str))
    else:
        print_summary(title, {**rows, **error_rows(errors)})
        for note in notes:
            stdout.print(note, markup=False)
    if all_failed:
        raise AllFailedError(all_failed_line(job, errors))


def all_failed_line(job: str, errors: dict[str, Any]) -> str:
    """One line: which job, how many images, the top reasons and one example message."""
    reasons = ", ".join(f"{r} {n:,}" for r, n in errors["top_reasons"].items())
    example = next(iter(errors["examples"].values()), "")
    line = f"{job}: every image failed ({errors['errors']:,} of {errors['seen']:,}): {reasons}"
    return line + (f"; first: {example}" if example else "")
