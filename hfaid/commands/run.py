"""`hfaid run` (a recipe of steps, resumable, until people take over) and `hfaid plan` (what it
will cost, per step, before any GPU hour is spent)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hfaid.app import app
from hfaid.options import CatalogOpt, ConfigOpt, JsonOpt, resolve, stage_input_option
from hfaid.orchestrate import EXIT_WAITING, preflight, run_steps, step_metrics, steps_until
from hfaid.output import stdout
from hfaid.recipe import AWAIT_REVIEWS, Recipe, Step, default_recipe_text, load_recipe
from hfaid_core.config import Config
from hfaid_core.errors import HfaidError

PLAN_WIDTH = 104  # the plan table's columns, unwrapped, also in logs and pipes
RecipeOpt = Annotated[Path | None, typer.Option(
    "--recipe", help="Recipe TOML [default: the paper's funnel, see --print-recipe].")]
PoolOpt = Annotated[int | None, typer.Option(
    "--pool", help="Images in the pool [default: the catalog's images, else the sources' files].")]
GpusOpt = Annotated[int, typer.Option("--gpus", min=1, help="GPUs the scoring runs on.")]
GpuOpt = Annotated[str | None, typer.Option(
    "--gpu", help="h100 | h200 | a100 | l40s | l40 | l4 | a10 | cpu [default: this machine's "
                  "GPU, else h100].")]
CpusOpt = Annotated[int | None, typer.Option(
    "--cpus", min=1, help="CPU cores for the CPU stages [default: this machine's].")]
VotesOpt = Annotated[float | None, typer.Option(
    "--votes-per-hour", help="One reviewer's votes per hour [default: recipe [plan], 400].")]


@app.command()
def run(
    recipe: RecipeOpt = None,
    until: Annotated[str | None, typer.Option(
        "--until", help="Stop after this step or funnel stage (e.g. quality).")] = None,
    source: Annotated[list[Path] | None, typer.Option(
        "--source", help="Images to ingest (repeatable): replaces the recipe's sources.")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the plan (as `hfaid plan`) and run nothing.")] = False,
    print_recipe: Annotated[bool, typer.Option(
        "--print-recipe", help="Print the built-in recipe (to copy and edit), then exit.")
    ] = False,
    pool: PoolOpt = None,
    gpus: GpusOpt = 1,
    gpu: GpuOpt = None,
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Run a recipe's steps in order, each skipping work already done; stops (exit 4) while the
    review queue waits for reviewers, and continues from there when run again."""
    if print_recipe:
        typer.echo(default_recipe_text(), nl=False)
        return
    loaded = _with_sources(load_recipe(recipe), source)
    steps = steps_until(loaded, until)
    cat, cfg = resolve(catalog, config)
    if dry_run:
        _print_plan(_plan(loaded, steps, cat, cfg, pool, gpus, gpu, None, None))
        return
    skips = preflight(steps, loaded.base, cat, cfg)
    state = run_steps(loaded, steps, cat, config, skips)
    stdout.rule("hfaid run")
    if state.code == EXIT_WAITING:
        stdout.print(f"stopped: {state.stopped}; `hfaid funnel` shows where images are",
                     markup=False)
    elif state.code:
        stdout.print(f"stopped: {state.stopped}; fix it and run again: finished work is kept",
                     markup=False)
    else:
        done = sum(s["status"] == "done" for s in state.steps)
        stdout.print(f"done: {done} of {len(steps)} steps ran"
                     + (f", {len(skips)} optional skipped" if skips else ""))
    if state.code:
        raise typer.Exit(state.code)


@app.command()
def plan(
    recipe: RecipeOpt = None,
    pool: PoolOpt = None,
    gpus: GpusOpt = 1,
    gpu: GpuOpt = None,
    cpus: CpusOpt = None,
    votes_per_hour: VotesOpt = None,
    until: Annotated[str | None, typer.Option("--until", help="Plan up to this step or stage.")
                     ] = None,
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Per step: images in, expected images out, wall time and GPU-hours (from this catalog's
    own runs on that hardware when it has them, else measured rates), and reviewer hours."""
    loaded = load_recipe(recipe)
    cat, cfg = resolve(catalog, config)
    result = _plan(loaded, steps_until(loaded, until), cat, cfg, pool, gpus, gpu, cpus,
                   votes_per_hour)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        _print_plan(result)


def _with_sources(recipe: Recipe, sources: list[Path] | None) -> Recipe:
    if not sources:
        return recipe
    ingest = [s for s in recipe.steps if s.command == "ingest"]
    if not ingest:
        raise HfaidError(f"--source: recipe {recipe.source} has no ingest step")
    for step in ingest:  # command-line paths are relative to the current folder
        step.options["sources"] = [str(p.resolve()) for p in sources]
    return recipe


def _plan(recipe: Recipe, steps: list[Step], cat, cfg: Config, pool: int | None, gpus: int,
          gpu: str | None, cpus: int | None, votes_per_hour: float | None) -> dict[str, Any]:
    from curation.plan.estimate import estimate, gpu_kind

    kind = gpu_kind(gpu) if gpu else _local_gpu_kind()
    if kind is None:
        raise HfaidError(f"--gpu {gpu!r}: not a known GPU (h100, h200, a100, l40s, l40, l4, "
                         "a10) or cpu")
    size = pool if pool is not None else _pool_size(recipe, steps, cat, cfg)
    votes = votes_per_hour or float(recipe.plan.get("votes_per_hour", 400))
    result = estimate([_plan_step(s, cfg) for s in steps], size, gpus, kind,
                      cpus or os.cpu_count() or 1, cfg.policy, votes, cat)
    result["recipe"] = recipe.source
    return result


def _local_gpu_kind() -> str:
    """This machine's GPU kind, else h100 (the measured rates)."""
    import torch

    from curation.plan.estimate import gpu_kind

    if torch.cuda.is_available():
        return gpu_kind(torch.cuda.get_device_name(0)) or "h100"
    return "h100"


def _pool_size(recipe: Recipe, steps: list[Step], cat, cfg: Config) -> int:
    """The catalog's images, else the number of files the recipe's sources hold."""
    from curation.ingest.sources import expand_sources
    from db.images import image_counts

    if cat.path.exists() and image_counts(cat)["images"]:
        return image_counts(cat)["images"]
    sources = [recipe.base / s for st in steps if st.command == "ingest"
               for s in st.options.get("sources", [])]
    if not sources:
        raise HfaidError("give --pool N (the catalog is empty and the recipe names no sources)")
    return sum(1 for _ in expand_sources(sources, cfg.ingest.extensions, cfg.ingest.path_column))


def _plan_step(step: Step, cfg: Config):
    from curation.export.plan import parse_status
    from curation.plan.estimate import PlanStep

    opts = step.options
    if step.command == "score":
        stage = stage_input_option(str(opts.get("stage_input", cfg.score.stage_input)))
        return PlanStep(step.name, "score", stage or "ingest", metrics=step_metrics(step, cfg))
    if step.command == "caption":
        stage = stage_input_option(str(opts.get("stage_input", cfg.caption.stage_input)))
        return PlanStep(step.name, "caption", stage or "ingest")
    if step.command == AWAIT_REVIEWS:
        return PlanStep(step.name, "await-reviews",
                        stage_input_option(str(opts["stage_input"])) or "ingest")
    if step.command == "export":
        stage, _ = parse_status(str(opts.get("status", cfg.export.status)))
        return PlanStep(step.name, "export", stage or "ingest")
    if step.command == "select":
        return PlanStep(step.name, "select", select_stage=str(opts.get("stage")))
    kind = step.command if step.command in ("ingest", "clean", "dedup") else "other"
    return PlanStep(step.name, kind)


def _print_plan(result: dict[str, Any]) -> None:
    table = Table(title=f"plan: {result['pool']:,} images, {result['gpus']} x {result['gpu']}, "
                        f"{result['cpus']} CPU cores", title_justify="left")
    for column in ("step", "in", "out", "out from", "img/s", "rate from", "wall h", "GPU-h",
                   "people-h"):
        table.add_column(column, no_wrap=True, justify="left" if column in
                         ("step", "out from", "rate from") else "right")
    for r in result["steps"]:
        rate = ("-" if r["rate"] is None else f"{r['rate']:,.0f}/h" if r["device"] == "people"
                else f"{r['rate']:,.0f}" if r["rate"] >= 100 else f"{r['rate']:.3g}")
        table.add_row(r["step"], _count(r["images_in"]), _count(r["images_out"]), r["out_from"],
                      rate, r["rate_from"], _hours(r["wall_hours"]), _hours(r["gpu_hours"]),
                      _hours(r["human_hours"]))
    t = result["totals"]
    table.add_row("total", "", "", "", "", "", _hours(t["wall_hours"]), _hours(t["gpu_hours"]),
                  _hours(t["human_hours"]))
    wide = stdout if stdout.width >= PLAN_WIDTH else Console(width=PLAN_WIDTH)
    wide.print(table)
    stdout.print(f"GPU-hours on {result['gpu']}: {t['gpu_hours']:.2f} "
                 f"({t['scoring_gpu_hours']:.2f} scoring); reviewers: {t['human_hours']:.1f} "
                 f"person-hours at {result['votes_per_hour']:g} votes/h (2 votes per image). "
                 f"GPU rates: {result['rates_from']}. Recipe: {result['recipe']}.", markup=False)
    for r in result["steps"]:
        for note in r["notes"]:
            stdout.print(f"{r['step']}: {note}", markup=False)


def _count(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1_000_000 else f"{n / 1e3:.1f}k" if n >= 10_000 else f"{n:,}"


def _hours(value: float) -> str:
    return "-" if not value else f"{value:.2f}" if value >= 0.01 else "<0.01"
