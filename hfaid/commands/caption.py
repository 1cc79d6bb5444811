"""`hfaid caption` (Florence-2 on accepted images) and `hfaid captions` (list, import sources)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import pyarrow as pa
import typer

from captioning.models import is_known_checkpoint, resolve_model
from db.captions import (
    caption_counts,
    caption_listing,
    image_paths,
    write_source_captions,
)
from hfaid.app import app
from hfaid.jobs import finish_job
from hfaid.options import (
    CatalogOpt,
    ConfigOpt,
    JsonOpt,
    gpu_name,
    open_for_reading,
    open_for_writing,
    recorded_run,
    stage_input_option,
)
from hfaid.output import print_summary, stdout
from hfaid.tables import print_arrow_table, write_arrow_table
from hfaid_core.errors import HfaidError


@app.command()
def caption(
    model: Annotated[str | None, typer.Option(
        help="florence-community/Florence-2-large|-base, florence2-large|-base, or a model "
             "folder [default: config].")] = None,
    stage_input: Annotated[str | None, typer.Option(
        help="Caption images that passed this stage (accepted = review) [default: config]."
    )] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Images per generate call.")] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda | cuda:N.")] = None,
    num_beams: Annotated[int | None, typer.Option(min=1, help="Beam count.")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(min=1, help="Token limit.")] = None,
    recaption: Annotated[str | None, typer.Option(
        help="'flagged': re-caption images whose caption was flagged, with the recaption_* "
             "generation settings.")] = None,
    weights_dir: Annotated[Path | None, typer.Option(
        help="Weights folder [default: [weights] dir, $HFAID_WEIGHTS_DIR, "
             "~/.cache/hfaid/weights].")] = None,
    if_available: Annotated[bool, typer.Option(
        "--if-available", help="When the weights are missing, print a note and exit 0.")] = False,
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Florence-2 detailed captions, checked and versioned; re-running resumes."""
    from captioning.captioner import resolve_device
    from captioning.job import build_spec, run_caption_job
    from db.outcomes import run_errors

    cat, cfg = open_for_writing(catalog, config)
    settings = cfg.caption
    for name, value in (("num_beams", num_beams), ("max_new_tokens", max_new_tokens)):
        if value is not None:
            setattr(settings, name, value)
    if recaption not in (None, "flagged"):
        raise HfaidError(f"--recaption {recaption!r}: only 'flagged' is supported")
    stage = stage_input_option(stage_input or settings.stage_input)
    wanted = model or settings.model
    try:
        ref = resolve_model(wanted, weights_dir or cfg.weights.dir or None)
    except HfaidError as exc:
        # Only missing downloadable weights are skippable; a bad folder is still an error.
        if if_available and is_known_checkpoint(wanted):
            stdout.print(f"caption skipped (--if-available): {exc}", markup=False)
            return
        raise
    spec = build_spec(ref, settings, recaption=recaption == "flagged", batch_size=batch_size,
                      device=device, max_pixels=cfg.decode.max_pixels)
    before = caption_counts(cat)
    record = {"caption": cfg.section("caption"), "version": spec.version,
              "stage_input": stage, "recaption": recaption, "batch_size": spec.batch_size,
              "device": resolve_device(spec.device), "gpu": gpu_name(resolve_device(spec.device))}
    with recorded_run(cat, "caption", record) as run:
        stats = run_caption_job(cat, spec, stage, run.run_id, settings.shard_size,
                                recaption=recaption == "flagged")
        after = caption_counts(cat)
        errors = run_errors(cat, "caption", run.run_id)
        run.status = "interrupted" if stats.interrupted else "done"
        run.counts = {"images": stats.items, "captions_added": stats.rows_merged,
                      "flagged": after["flagged"], "seconds": round(stats.seconds, 2),
                      "interrupted": stats.interrupted, "errors": errors["errors"],
                      "top_error_reasons": errors["top_reasons"]}
    rows = {
        "input": "flagged captions" if recaption else f"passed {stage or 'nothing (all images)'}",
        "images tried": stats.items,
        "captions added": stats.rows_merged,
        "recovered result files": stats.recovered_files,
        "images with a caption": after["captioned"],
        "flagged (hfaid captions --flagged)": after["flagged"],
        "newly flagged": max(0, after["flagged"] - before["flagged"]),
        "seconds": stats.seconds,
        "images/s": stats.items / stats.seconds if stats.seconds else 0.0,
    }
    if stats.interrupted:
        errors = {**errors, "seen": 0}  # the interrupt, not the images, ended this run
    finish_job("caption", f"caption ({spec.version})", rows, run.counts, errors, as_json)
    if stats.interrupted:
        raise KeyboardInterrupt


captions_app = typer.Typer(help="List generated captions; import source captions.",
                           no_args_is_help=False)
app.add_typer(captions_app, name="captions")


class CaptionFormat(StrEnum):
    table = "table"
    jsonl = "jsonl"
    csv = "csv"
    parquet = "parquet"


@captions_app.callback(invoke_without_command=True)
def captions(
    ctx: typer.Context,
    flagged: Annotated[bool, typer.Option("--flagged", help="Only flagged captions.")] = False,
    format: Annotated[CaptionFormat, typer.Option("--format")] = CaptionFormat.table,
    out: Annotated[Path | None, typer.Option("--out", help="File to write.")] = None,
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
) -> None:
    """image_id, path, caption, model, flags: the best generated caption per image."""
    if ctx.invoked_subcommand is not None:
        return
    cat, _ = open_for_reading(catalog, config)
    table = caption_listing(cat, flagged_only=flagged)
    if format is CaptionFormat.table and out is None:
        print_arrow_table(table)
        return
    if format is CaptionFormat.parquet and out is None:
        raise HfaidError("--format parquet needs --out FILE")
    if format is CaptionFormat.csv:  # CSV has no lists: flags become "a;b"
        flags = [";".join(f) for f in table.column("flags").to_pylist()]
        table = table.set_column(table.column_names.index("flags"), "flags",
                                 pa.array(flags, pa.string()))
    write_arrow_table(table, "jsonl" if format is CaptionFormat.table else format.value, out)


@captions_app.command("import")
def import_captions(
    table: Annotated[Path | None, typer.Option(
        "--table", help="Parquet/CSV with a caption column and a path column.")] = None,
    column: Annotated[str, typer.Option(help="Caption column of --table.")] = "caption",
    path_column: Annotated[str | None, typer.Option(
        help="Path column of --table [default: config ingest.path_column].")] = None,
    sidecars: Annotated[bool, typer.Option(
        "--sidecars/--no-sidecars", help="Read .txt/.json files next to the images.")] = True,
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Keep the captions that came with the images (sidecar files, a table column)."""
    from captioning.sources import sidecar_captions, table_captions

    cat, cfg = open_for_writing(catalog, config)
    paths = image_paths(cat)
    with recorded_run(cat, "captions import", {"table": str(table) if table else None,
                                                "sidecars": sidecars}) as run:
        imported, problems = 0, []
        if sidecars:
            rows, problems = sidecar_captions(paths)
            imported += write_source_captions(cat, rows, run.run_id)
        if table is not None:
            rows = table_captions(table, column, path_column or cfg.ingest.path_column, paths)
            imported += write_source_captions(cat, rows, run.run_id)
        run.counts = {"imported": imported, "unreadable_sidecars": len(problems)}
    for line in problems[:20]:  # plain stderr lines: paths must not be wrapped
        typer.echo(f"unreadable sidecar: {line}", err=True)
    print_summary("captions import", {"paths checked": paths.num_rows,
                                      "source captions imported": imported,
                                      "unreadable sidecars": len(problems)})
