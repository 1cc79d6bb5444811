"""`hfaid score` (metrics on the shard runner) and `hfaid weights list|fetch|verify`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hfaid.app import app
from hfaid.jobs import finish_job
from hfaid.options import (
    CatalogOpt,
    ConfigOpt,
    JsonOpt,
    gpu_name,
    load_config,
    open_for_writing,
    recorded_run,
    stage_input_option,
)
from hfaid.output import stdout
from hfaid_core.errors import HfaidError
from hfaid_core.settings.ranges import cli_value

WeightsDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--weights-dir",
        "--dir",
        help="Weights folder [default: [weights] dir, $HFAID_WEIGHTS_DIR, ~/.cache/hfaid/weights].",
    ),
]


def _pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


@app.command()
def score(
    metrics: Annotated[
        str | None, typer.Option(help="Comma-separated metrics [default: config].")
    ] = None,
    stage_input: Annotated[
        str | None,
        typer.Option(
            "--stage-input", help="Score images that passed this stage ('all' = every image)."
        ),
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda | cuda:N.")] = None,
    dtype: Annotated[
        str | None, typer.Option(help="auto | float32 | float16 | bfloat16 (CPU: no float16).")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Images per batch (0 = per metric).")
    ] = None,
    engine: Annotated[str | None, typer.Option(help="local | ray.")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Model processes (local) or actors (ray).")
    ] = None,
    decode_workers: Annotated[
        int | None,
        typer.Option("--decode-workers", help="DataLoader decode processes (-1 = auto)."),
    ] = None,
    quantize: Annotated[
        str | None, typer.Option(help="'' | 8bit | 4bit, for metrics that support it.")
    ] = None,
    weights_dir: WeightsDirOpt = None,
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Score images that passed a stage; (image, metric, version) already present are skipped."""
    from curation.scoring.job import (
        ScoreSettings,
        metric_versions,
        run_scoring,
        versions_from_the_cluster,
    )
    from curation.scoring.scorers import get_scorer_spec
    from curation.scoring.timing import shares
    from db.outcomes import run_errors
    from db.scoring import count_stage_input, score_counts
    from hfaid_core.settings.score import ScoreConfig, shard_size_for

    cat, cfg = open_for_writing(catalog, config)
    sc = cfg.score
    cli_value(ScoreConfig, "batch_size", batch_size, "--batch-size")
    cli_value(ScoreConfig, "workers", workers, "--workers")
    cli_value(ScoreConfig, "decode_workers", decode_workers, "--decode-workers")
    names = tuple(m.strip() for m in (metrics or ",".join(sc.metrics)).split(",") if m.strip())
    specs = [get_scorer_spec(m) for m in names]  # unknown names fail here, before any work
    chosen_engine = engine or sc.engine
    if chosen_engine not in ("local", "ray"):
        raise HfaidError(f"--engine {chosen_engine!r}: use local or ray")
    bits = sc.quantize if quantize is None else quantize
    if bits not in ("", "8bit", "4bit"):
        raise HfaidError(f"--quantize {bits!r}: use 8bit or 4bit (or leave empty)")
    options = {
        s.name: {"quantize": bits} for s in specs if bits and "quantize" in s.supported_options
    }
    chosen_device = _pick_device(device or sc.device)
    settings = ScoreSettings(
        metrics=names,
        device=chosen_device,
        dtype=None if (dtype or sc.dtype) == "auto" else (dtype or sc.dtype),
        weights_dir=str(weights_dir or cfg.weights.dir or "") or None,
        batch_size=sc.batch_size if batch_size is None else batch_size,
        decode_workers=sc.decode_workers if decode_workers is None else decode_workers,
        options=options,
        max_pixels=cfg.decode.max_pixels,
        image_memory_mb=cfg.decode.image_memory_mb,
    )
    n_workers = sc.workers if workers is None else workers
    # A device or --dtype it cannot run, or a missing weights file, fails here, before any work
    # (for a Ray GPU job from a machine without a GPU, in the job's first step, on the cluster).
    if not versions_from_the_cluster(settings, chosen_engine):
        metric_versions(settings)
    stage = stage_input_option(sc.stage_input if stage_input is None else stage_input)
    if stage is not None and count_stage_input(cat, stage) == 0:
        raise HfaidError(f"--stage-input {stage}: no image has passed stage {stage!r} yet")
    record = {
        "score": cfg.section("score"),
        "weights": cfg.section("weights"),
        "metrics": list(names),
        "stage_input": stage,
        "device": settings.device,
        "gpu": gpu_name(settings.device),  # `hfaid plan` takes rates from runs on its GPU kind
        "engine": chosen_engine,
        "runner": cfg.section("runner"),
    }
    with recorded_run(cat, "score", record) as run:
        stats, versions = run_scoring(
            cat,
            settings,
            stage,
            run.run_id,
            shard_size=shard_size_for(chosen_device, sc.gpu_shard_size, cfg.runner.shard_size),
            workers=n_workers,
            engine=chosen_engine,
            ray_address=sc.ray_address or None,
        )
        counts = score_counts(cat, versions)
        errors = run_errors(cat, "score", run.run_id)
        run.status = "interrupted" if stats.interrupted else "done"
        run.counts = {
            "pending_images": stats.items,
            "rows_added": stats.rows_merged,
            "seconds": round(stats.seconds, 2),
            "versions": versions,
            "interrupted": stats.interrupted,
            "errors": errors["errors"],
            "top_error_reasons": errors["top_reasons"],
            "model_process_seconds": {k: round(v, 2) for k, v in stats.timings.items()},
        }
    summary = {
        "stage input": stage or "all images",
        "device / engine": f"{settings.device} / {chosen_engine}",
        "images pending": stats.items,
        "score rows added": stats.rows_merged,
        "recovered result files": stats.recovered_files,
        **{f"{m} rows ({versions[m]})": counts.get(m, 0) for m in names},
        "seconds": stats.seconds,
        "images/s": stats.items / stats.seconds if stats.seconds else 0.0,
        **{f"model processes {part}": f"{v:.0%}" for part, v in shares(stats.timings).items()},
    }
    if stats.interrupted:  # the summary of what was saved, then the interrupt
        finish_job("score", f"score {','.join(names)} into {cat.path}", summary, run.counts,
                   {**errors, "seen": 0}, as_json)
        raise KeyboardInterrupt
    note = _bottleneck_note(stats.timings, settings, n_workers, chosen_engine)
    finish_job("score", f"score {','.join(names)} into {cat.path}", summary, run.counts, errors,
               as_json, notes=(note,) if note else ())


def _bottleneck_note(timings: dict[str, float], settings, workers: int, engine: str
                     ) -> str | None:
    """Tells the user when decoding, not the models, set the job's speed."""
    from curation.scoring.job import settings_per_process
    from curation.scoring.timing import bottleneck_note
    from hfaid_core.settings.score import decode_workers_for

    per_process = settings_per_process(settings, workers, engine)
    return bottleneck_note(timings, decode_workers_for(settings.device, per_process.decode_workers))


weights_app = typer.Typer(
    help="Model weights for offline scoring and captioning.", no_args_is_help=True
)
app.add_typer(weights_app, name="weights")


def _weights_root(weights_dir: Path | None, config: Path | None) -> Path:
    from hfaid_core.weights import weights_dir as resolve_dir

    cfg = load_config(config)
    return resolve_dir(weights_dir or cfg.weights.dir or None)


@weights_app.command("list")
def weights_list(
    weights_dir: WeightsDirOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False
) -> None:
    """Every registered model, its files and whether they are present."""
    from hfaid_core.weights import missing_files, registered_weights

    root = _weights_root(weights_dir, config)
    rows = []
    for name, spec in registered_weights().items():
        missing = missing_files(name, root)
        rows.append(
            {
                "name": name,
                "files": list(spec.files),
                "present": not missing,
                "folder": str(root / name),
                "description": spec.description,
            }
        )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"weights in {root}", title_justify="left")
    for column in ("name", "present", "files", "description"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["name"], "yes" if r["present"] else "no", ", ".join(r["files"]), r["description"]
        )
    stdout.print(table)
    stdout.print("NIQE and BRISQUE parameters ship inside hfaid (no weights needed).")


@weights_app.command("fetch")
def weights_fetch(
    names: Annotated[list[str], typer.Argument(help="Model names, or 'all'.")],
    weights_dir: WeightsDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Download every file the named models need into the weights folder (needs network)."""
    from hfaid_core.weights import fetch_weights, registered_weights

    root = _weights_root(weights_dir, config)
    chosen = list(registered_weights()) if names == ["all"] else names
    for name in chosen:
        folder = fetch_weights(name, root)
        stdout.print(f"{name}: files in {folder}")


@weights_app.command("verify")
def weights_verify(
    names: Annotated[list[str] | None, typer.Argument(help="Models [default: all].")] = None,
    weights_dir: WeightsDirOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check files are present and print their fingerprints; exits 2 if any is missing."""
    from hfaid_core.weights import registered_weights, verify_weights

    root = _weights_root(weights_dir, config)
    results = [verify_weights(n, root) for n in (names or list(registered_weights()))]
    if as_json:
        typer.echo(json.dumps(results, indent=2))
    else:
        for r in results:
            state = "ok " + r["fingerprint"] if not r["missing"] else f"missing {r['missing'][0]}"
            stdout.print(f"{r['name']}: {state}")
    missing = [r for r in results if r["missing"]]
    if missing:
        raise HfaidError(
            f"{len(missing)} model(s) incomplete; run `hfaid weights fetch "
            f"{' '.join(r['name'] for r in missing)}`"
        )
