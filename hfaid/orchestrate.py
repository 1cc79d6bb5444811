"""`hfaid run`: a recipe's steps in order, each through its command's own code (and run record),
checked before any work, resumable at any point, stopping where reviewers take over."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from db.catalog import Catalog
from db.images import image_counts
from db.migrate import migrate
from db.review import state_counts
from db.runs import finish_run, start_run
from hfaid.options import package_versions, stage_input_option
from hfaid.output import stdout
from hfaid.recipe import AWAIT_REVIEWS, Recipe, Step, step_argv
from hfaid_core.config import Config
from hfaid_core.errors import HfaidError

EXIT_WAITING = 4  # `hfaid run` stopped where people take over (README.md, exit codes)


@dataclass
class RunState:
    """Where a run stands: per step its status, and why it stopped (if it did)."""

    steps: list[dict[str, Any]] = field(default_factory=list)
    stopped: str = ""
    code: int = 0

    def add(self, step: Step, status: str, note: str = "", code: int = 0) -> None:
        self.steps.append({"step": step.name, "status": status, "note": note, "code": code})


def steps_until(recipe: Recipe, until: str | None) -> list[Step]:
    """The recipe's steps up to and including the last one named `until` or writing stage
    `until` (all of them without --until)."""
    if until is None:
        return recipe.steps
    hits = [i for i, s in enumerate(recipe.steps) if until in (s.name, s.stage)]
    if not hits:
        names = ", ".join(dict.fromkeys([*(s.name for s in recipe.steps),
                                         *(s.stage for s in recipe.steps if s.stage)]))
        raise HfaidError(f"--until {until!r} names no step or stage of the recipe; use one of: "
                         f"{names}")
    return recipe.steps[: hits[-1] + 1]


def preflight(steps: list[Step], base: Path, catalog: Catalog, cfg: Config) -> dict[str, str]:
    """Everything checkable before any work: sources exist, weights are present. Returns the
    optional steps to skip (name -> why); a missing file of a required step is an error."""
    skips: dict[str, str] = {}
    for step in steps:
        try:
            _check_step(step, base, catalog, cfg)
        except HfaidError as exc:
            if step.optional:
                skips[step.name] = str(exc)
            else:
                raise HfaidError(
                    f"step {step.name}: {exc} (or mark the step `optional = true` in the recipe "
                    "to run without it); nothing was run"
                ) from None
    return skips


def _check_step(step: Step, base: Path, catalog: Catalog, cfg: Config) -> None:
    opts = step.options
    if step.command == "ingest":
        missing = [str(s) for s in opts.get("sources", []) if not os.path.lexists(base / s)]
        if missing:
            raise HfaidError(f"source {missing[0]} does not exist")
        if not opts.get("sources") and not _images(catalog):
            raise HfaidError("the ingest step lists no sources and the catalog has no images; "
                             "give `hfaid run --source DIR` or set sources in the recipe")
    elif step.command == "score" and (opts.get("engine") or cfg.score.engine) == "local":
        from curation.scoring.scorers import get_scorer_spec
        from hfaid_core.weights import get_spec, missing_files

        folder = base / opts["weights_dir"] if opts.get("weights_dir") else cfg.weights.dir or None
        for metric in step_metrics(step, cfg):
            name = get_scorer_spec(metric).weights
            if name and not get_spec(name).offline and missing_files(name, folder):
                missing = missing_files(name, folder)[0]
                raise HfaidError(f"weights for {metric} ({name}): missing file {missing}; run "
                                 f"`hfaid weights fetch {name}` on a machine with network access")
    elif step.command == "caption":
        from captioning.models import resolve_model

        resolve_model(str(opts.get("model") or cfg.caption.model),
                      base / opts["weights_dir"] if opts.get("weights_dir") else
                      cfg.weights.dir or None)


def step_metrics(step: Step, cfg: Config) -> tuple[str, ...]:
    value = step.options.get("metrics", list(cfg.score.metrics))
    names = value if isinstance(value, list) else str(value).split(",")
    return tuple(m.strip() for m in names if str(m).strip())


def _images(catalog: Catalog) -> int:
    return image_counts(catalog)["images"] if catalog.path.exists() else 0


def run_steps(recipe: Recipe, steps: list[Step], catalog: Catalog, config: Path | None,
              skips: dict[str, str]) -> RunState:
    """Run the steps in order, recorded as one `run` row; stops at a failed step or the review
    wait. Every step's own command records its own run and skips work already done."""
    from hfaid.cli import main  # the steps run through the entry point users type

    migrate(catalog)
    state = RunState()
    run_id = start_run(catalog, "run", {"recipe": recipe.source, "steps": [s.name for s in steps],
                                        "skipped_optional": skips}, package_versions())
    status = "failed"
    try:
        for index, step in enumerate(steps, 1):
            header = f"step {index}/{len(steps)}: {step.name}"
            if step.name in skips:
                stdout.rule(header)
                stdout.print(f"skipped (optional step): {skips[step.name]}", markup=False)
                state.add(step, "skipped", skips[step.name])
                continue
            if step.command == AWAIT_REVIEWS:
                stdout.rule(f"{header} ({AWAIT_REVIEWS})")
                if not _reviews_done(step, catalog, config, state):
                    break
                continue
            if step.command == "ingest" and not step.options.get("sources"):
                stdout.rule(header)
                note = f"no sources given; {_images(catalog):,} images already in the catalog"
                stdout.print(f"skipped: {note}")
                state.add(step, "skipped", note)
                continue
            argv = step_argv(step, recipe.base)
            stdout.rule(f"{header}: hfaid {' '.join(argv)}")
            argv += ["--catalog", str(catalog.path)]
            code = main(argv + (["--config", str(config)] if config is not None else []))
            if code != 0:
                state.add(step, "failed", code=code)
                state.stopped, state.code = f"step {step.name} exited with code {code}", code
                if code >= 128:  # stopped by a signal: this run is interrupted too
                    raise KeyboardInterrupt
                break
            state.add(step, "done")
        status = "waiting" if state.code == EXIT_WAITING else "failed" if state.code else "done"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        finish_run(catalog, run_id, status, {"steps": state.steps, "stopped": state.stopped})
    return state


def _reviews_done(step: Step, catalog: Catalog, config: Path | None, state: RunState) -> bool:
    """True when enough of the review queue is decided; else prints the wait line and stops."""
    stage = str(step.options["stage_input"])
    counts = state_counts(catalog, stage_input_option(stage))
    queued = sum(counts.values())
    decided = counts["accepted"] + counts["rejected"]
    need = math.ceil(float(step.options["min_decided"]) * queued)
    if decided >= need:
        stdout.print(f"reviews: {queued:,} queued, {decided:,} decided "
                     f"({counts['accepted']:,} accepted); going on")
        state.add(step, "done")
        return True
    serve = f"hfaid review --stage-input {stage} --catalog {catalog.path}"
    if config is not None:
        serve += f" --config {config}"
    line = f"waiting for reviews: {queued:,} queued, {decided:,} decided"
    stdout.print(f"{line} (going on at {need:,}); reviewers vote in `{serve}`; "
                 "re-run the same `hfaid run` to continue", markup=False)
    state.add(step, "waiting", line, EXIT_WAITING)
    state.stopped, state.code = line, EXIT_WAITING
    return False
