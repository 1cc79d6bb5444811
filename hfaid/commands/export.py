"""`hfaid export`: write the curated set as WebDataset shards or an imagefolder; `verify-export`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from hfaid.app import app
from hfaid.jobs import finish_job
from hfaid.options import CatalogOpt, ConfigOpt, JsonOpt, open_for_writing, recorded_run
from hfaid.output import item_progress
from hfaid_core.config import RunnerConfig
from hfaid_core.errors import HfaidError
from hfaid_core.settings.export import ExportConfig
from hfaid_core.settings.ranges import cli_value


@app.command()
def export(
    out: Annotated[Path, typer.Option("--out", help="Output folder (must be empty or new).")],
    format: Annotated[str | None, typer.Option(
        "--format", help="webdataset | imagefolder [default: config, webdataset].")] = None,
    maxcount: Annotated[int | None, typer.Option(
        help="Samples per shard [default: config].")] = None,
    maxsize: Annotated[int | None, typer.Option(help="Bytes per shard [default: config].")] = None,
    status: Annotated[str | None, typer.Option(
        help="accepted | rejected | queued | all | passed:STAGE [default: accepted].")] = None,
    captions: Annotated[str | None, typer.Option(
        help="required (unflagged generated caption) | any (best available, may be empty).")
    ] = None,
    resize: Annotated[str | None, typer.Option(
        help="none | max:N | short:N | crop:N (re-encodes) [default: none].")] = None,
    image_format: Annotated[str | None, typer.Option(
        "--image-format", help="keep (original bytes) | jpg | png [default: keep].")] = None,
    pairs: Annotated[bool | None, typer.Option(
        "--pairs/--no-pairs", help="Add {key}.lr.png degraded images and {key}.degradation.txt.")
    ] = None,
    scale: Annotated[int | None, typer.Option(help="LR factor for --pairs [default: 4].")] = None,
    seed: Annotated[int | None, typer.Option(help="Degradation seed [default: config].")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace a non-empty --out folder.")] = False,
    workers: Annotated[int | None, typer.Option(
        help="Processes for --pairs/--resize [default: [runner] workers].")] = None,
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Export images with consensus "accepted" and a caption (by default), with manifest.json
    (sha256 per shard) and a README.md datasheet; same catalog + options = same bytes."""
    from curation.export.run import check_options, options_dict, run_export
    from curation.export.samples import FAILURE_REASONS
    from db.outcomes import run_errors

    cat, cfg = open_for_writing(catalog, config)
    numbers = {"maxcount": maxcount, "maxsize": maxsize, "scale": scale, "seed": seed}
    for name, value in numbers.items():
        cli_value(ExportConfig, name, value, f"--{name}")
    cli_value(RunnerConfig, "workers", workers, "--workers")
    overrides = {"format": format, "status": status, "captions": captions, "resize": resize,
                 "image_format": image_format, "pairs": pairs, **numbers}
    ecfg = dataclasses.replace(cfg.export, **{k: v for k, v in overrides.items() if v is not None})
    check_options(ecfg)
    settings = {"out": str(out), "overwrite": overwrite, **options_dict(ecfg, cfg.degrade)}
    with recorded_run(cat, "export", settings) as run:
        with item_progress("export", 0) as advance:
            result = run_export(cat, ecfg, cfg.degrade, out, overwrite,
                                workers if workers is not None else cfg.runner.workers,
                                run.run_id, progress=advance, max_pixels=cfg.decode.max_pixels)
        run.counts = {"export_id": result.export_id, **result.manifest["counts"]}
    counts = result.manifest["counts"]
    # Images that could not be read or decoded are the export's errors (its outcomes say
    # "reject" with that reason); options leaving an image out (no caption) are not.
    failures = {r: n for r, n in counts["skipped"].items() if r in FAILURE_REASONS}
    examples = run_errors(cat, "export", run.run_id, failure_reasons=FAILURE_REASONS)["examples"]
    errors = {"seen": counts["exported"] + sum(failures.values()),
              "errors": sum(failures.values()), "top_reasons": failures,
              "examples": examples}
    rows = {"export id": result.export_id, "folder": str(result.out),
            "selected": counts["selected"], "exported": counts["exported"]}
    rows.update({f"left out: {r}": n for r, n in counts["skipped"].items()
                 if r not in FAILURE_REASONS})
    rows.update({f"images .{ext}": n for ext, n in counts["image_formats"].items()})
    if result.resumed_shards:
        rows["shards kept from the interrupted run"] = result.resumed_shards
    if "shards" in result.manifest:
        rows["shards"] = len(result.manifest["shards"])
    if ecfg.format == "webdataset" and len(counts["image_formats"]) > 1:
        rows["warning"] = (f"mixed image formats {counts['image_formats']}: Hugging Face "
                           "`datasets` wants one field set per sample; add --image-format jpg|png")
    if counts["exported"] == 0:
        rows["note"] = (f"nothing exported for --status {ecfg.status} --captions {ecfg.captions}; "
                        "see `hfaid funnel` (no accepted/captioned images yet?)")
    finish_job("export", f"export ({ecfg.format})", rows,
               {"export_id": result.export_id, "out": str(result.out), **counts}, errors, as_json)


@app.command("verify-export")
def verify_export_cmd(
    folder: Annotated[Path, typer.Argument(help="An export folder (holds manifest.json).")],
) -> None:
    """Check every shard/file of an export against its manifest's sha256 and keys."""
    from curation.export.run import verify_export

    problems = verify_export(folder)
    if problems:
        raise HfaidError(f"{folder}: {len(problems)} problem(s): " + "; ".join(problems[:5]))
    typer.echo(f"{folder}: ok")
