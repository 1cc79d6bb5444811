"""`hfaid ingest SOURCE...`: add images from folders, path lists and Parquet/CSV tables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from curation.ingest.scan import ingest as run_ingest
from db.images import image_counts, ingest_errors
from hfaid.app import app
from hfaid.jobs import finish_job
from hfaid.options import CatalogOpt, ConfigOpt, JsonOpt, open_for_writing, recorded_run
from hfaid_core.config import RunnerConfig
from hfaid_core.settings.ranges import cli_value


@app.command()
def ingest(
    sources: Annotated[
        list[Path], typer.Argument(help="Folders, .txt path lists, .parquet/.csv tables.")
    ],
    workers: Annotated[
        int | None, typer.Option(help="Hashing processes [default: config].")
    ] = None,
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Hash and register images; re-running skips paths whose size and mtime are unchanged."""
    cat, cfg = open_for_writing(catalog, config)
    cli_value(RunnerConfig, "workers", workers, "--workers")
    before = image_counts(cat)
    settings = {
        "sources": [str(s) for s in sources],
        "ingest": cfg.section("ingest"),
        "runner": cfg.section("runner"),
    }
    with recorded_run(cat, "ingest", settings) as run:
        stats, scan = run_ingest(
            cat,
            sources,
            cfg.ingest.extensions,
            cfg.ingest.path_column,
            run.run_id,
            workers if workers is not None else cfg.runner.workers,
            cfg.runner.shard_size,
        )
        after = image_counts(cat)
        errors = ingest_errors(cat, run.run_id)
        unsupported = scan["unsupported_extension"]
        run.counts = {
            "candidates": scan["candidates"],
            "skipped_unchanged": scan["skipped_unchanged"],
            "unsupported_extension": unsupported,
            "read": stats.items,
            "new_images": after["images"] - before["images"],
            "path_errors": after["path_errors"],
            "exact_duplicates": after["exact_duplicates"],
            "errors": errors["errors"],
            "top_error_reasons": errors["top_reasons"],
            "seconds": round(stats.seconds, 2),
        }
    finish_job(
        "ingest",
        f"ingest into {cat.path}",
        {
            "paths found": scan["candidates"],
            "skipped: unsupported_extension": _by_extension(unsupported),
            "unchanged (skipped)": scan["skipped_unchanged"],
            "read and hashed": stats.items,
            "new images": after["images"] - before["images"],
            "images in catalog": after["images"],
            "paths in catalog": after["paths"],
            "unreadable paths in catalog": after["path_errors"],
            "exact duplicates (byte-identical paths)": after["exact_duplicates"],
            "seconds": stats.seconds,
            "images/s": stats.items / stats.seconds if stats.seconds else 0.0,
        },
        run.counts,
        errors,
        as_json,
    )


def _by_extension(counts: dict[str, int]) -> str:
    """"12 (.svg 9, .txt 3)": every file the folders held that ingest passed over."""
    if not counts:
        return "0"
    shown = ", ".join(f"{ext or '(none)'} {n:,}" for ext, n in list(counts.items())[:6])
    more = " ..." if len(counts) > 6 else ""
    return f"{sum(counts.values()):,} ({shown}{more})"
