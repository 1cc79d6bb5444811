"""`hfaid evaluate`: the paper's SR protocol on a held-out set and the Table-1-style table."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from hfaid.app import app
from hfaid.options import CatalogOpt, ConfigOpt, open_for_writing, recorded_run
from hfaid.output import console, print_summary
from hfaid_core.settings.evaluate import EvaluateConfig
from hfaid_core.settings.ranges import cli_value
from hfaid_core.settings.score import ScoreConfig


def _split(text: str | None) -> list[str] | None:
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


@app.command()
def evaluate(
    test_set: Annotated[Path, typer.Option(
        "--test-set", help="Folder of the test set: made on the first run, then only read.")],
    hr: Annotated[str | None, typer.Option(
        "--hr", help="HR images to make the set from: a folder, or `bundled` (8 real photos "
        "shipped with scikit-image, matplotlib and pyiqa).")] = None,
    export: Annotated[Path | None, typer.Option(
        "--export", help="Make the set from an `hfaid export --pairs` folder (its LR crops).")
    ] = None,
    method: Annotated[list[str] | None, typer.Option(
        "--method", help="NAME=FOLDER of SR outputs named like the LR files (repeatable).")
    ] = None,
    baseline: Annotated[str | None, typer.Option(
        "--baseline", help="Reference columns without a model: bicubic,lanczos.")] = None,
    drop: Annotated[list[str] | None, typer.Option(
        "--drop", help="Remove a method's column from this set's table (repeatable).")] = None,
    metrics: Annotated[str | None, typer.Option(
        "--metrics", help="Comma-separated [default: config: psnr,ssim,lpips,maniqa,musiq,"
        "clipiqa,brisque,niqe].")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Folder for table.md, table.csv, per_image.parquet "
        "[default: TEST_SET/results].")] = None,
    hr_size: Annotated[int | None, typer.Option("--hr-size", help="HR crop side [512].")] = None,
    scale: Annotated[int | None, typer.Option("--scale", help="LR = HR / scale [4].")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Degradation seed [0].")] = None,
    shave: Annotated[int | None, typer.Option(
        "--shave", help="Pixels cut from each border before PSNR/SSIM [4].")] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda | cuda:N.")] = None,
    workers: Annotated[int | None, typer.Option(help="Model processes.")] = None,
    batch_size: Annotated[int | None, typer.Option(
        "--batch-size", help="Images per batch (0 = per metric).")] = None,
    weights_dir: Annotated[Path | None, typer.Option(
        "--weights-dir", help="Weights folder [default: [weights] dir].")] = None,
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Make (once) a test set of HR crops and Real-ESRGAN LR inputs, score SR outputs against it
    (PSNR, SSIM, LPIPS, MANIQA, MUSIQ, CLIP-IQA, BRISQUE, NIQE) and write the table."""
    from dataclasses import asdict

    from curation.evaluate.methods import parse_method
    from curation.evaluate.run import EvalRequest, run_evaluate
    from curation.evaluate.table import to_markdown
    from curation.evaluate.testset import Protocol
    from hfaid.commands.score import _pick_device

    cat, cfg = open_for_writing(catalog, config)
    ev = cfg.evaluate
    numbers = {"hr_size": hr_size, "scale": scale, "seed": seed, "shave": shave,
               "workers": workers}
    for name, value in numbers.items():
        cli_value(EvaluateConfig, name, value, f"--{name.replace('_', '-')}")
    cli_value(ScoreConfig, "batch_size", batch_size, "--batch-size")
    protocol = Protocol(hr_size=hr_size or ev.hr_size, scale=scale or ev.scale,
                        seed=ev.seed if seed is None else seed,
                        degradation=asdict(cfg.degrade))
    request = EvalRequest(
        test_set=test_set, protocol=protocol, hr=hr, export=export,
        methods=[parse_method(m) for m in method or []],
        baselines=_split(baseline) if baseline is not None else list(ev.baselines),
        drop=list(drop or []),
        metrics=_split(metrics) if metrics is not None else list(ev.metrics),
        shave=ev.shave if shave is None else shave,
        device=_pick_device(device or ev.device),
        weights_dir=str(weights_dir or cfg.weights.dir or "") or None,
        workers=workers or ev.workers, decode_workers=cfg.score.decode_workers,
        batch_size=cfg.score.batch_size if batch_size is None else batch_size, out=out,
        max_pixels=cfg.decode.max_pixels,
    )
    started = time.perf_counter()
    settings = {"evaluate": cfg.section("evaluate"), "test_set": str(test_set),
                "methods": method or [], "baselines": request.baselines}
    with recorded_run(cat, "evaluate", settings) as run:
        result = run_evaluate(cat, request, run.run_id)
        run.counts = {**result.counts, "set_id": result.test_set.set_id}
    for line in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {line}")
    if result.table is not None:
        print(to_markdown(result.table))  # plain: a Markdown table must not be wrapped
    made = "made" if result.test_set.created else "verified"
    rows = {f"test set ({made})": str(result.test_set.folder),
            "set id": result.test_set.set_id, **result.counts}
    if result.notes:
        rows["not run (weights missing)"] = ", ".join(result.notes)
    rows.update({name: str(path) for name, path in result.paths.items()})
    if result.table is None:
        rows["next"] = (f"run your SR model on {result.test_set.folder / 'lr'} and pass "
                        "--method NAME=FOLDER (or --baseline bicubic)")
    rows["seconds"] = time.perf_counter() - started
    print_summary("evaluate", rows)
