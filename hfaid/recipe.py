"""Recipes: a TOML list of steps, each an hfaid command with its options, checked against the
command's own options before anything runs (docs/CONFIG.md, "Recipes")."""

from __future__ import annotations

import tomllib
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import typer

from hfaid.app import app
from hfaid.options import stage_input_option
from hfaid_core.errors import HfaidError

DEFAULT_RECIPE = "paper.toml"  # hfaid/recipes/: the RAP-SR paper's funnel
AWAIT_REVIEWS = "await-reviews"  # the step where humans take over
# Commands a recipe may not hold: they serve, wrap runs, or are groups of subcommands.
NOT_STEPS = {"run", "plan", "demo", "review", "weights", "reviewers", "study", "captions", "init"}
RUN_OPTIONS = {"catalog", "config", "as_json", "help"}  # `hfaid run` sets these itself
SELECT_STAGE = {"quality": "quality", "aesthetic": "aesthetic", "review": "review_queue"}
STEP_KEYS = {"name", "command", "optional"}
AWAIT_OPTIONS = {"stage_input": "review_queue", "min_decided": 1.0}


@dataclass
class Step:
    """One recipe step: an hfaid command (or `await-reviews`) and its options."""

    name: str
    command: str
    options: dict[str, Any] = field(default_factory=dict)
    optional: bool = False  # missing weights skip the step instead of stopping the run

    @property
    def stage(self) -> str | None:
        """The funnel stage this step writes (what `--until` and `hfaid plan` go by)."""
        if self.command == "select":
            return SELECT_STAGE.get(str(self.options.get("stage")))
        if self.command == AWAIT_REVIEWS:
            return "review"
        if self.command in ("ingest", "clean", "dedup", "score", "caption", "export"):
            return self.command
        return None


@dataclass
class Recipe:
    name: str
    steps: list[Step]
    base: Path  # relative paths in path options resolve against this folder
    source: str  # the file, or "built-in paper.toml"
    plan: dict[str, Any] = field(default_factory=dict)


def default_recipe_text() -> str:
    return resources.files("hfaid.recipes").joinpath(DEFAULT_RECIPE).read_text()


def load_recipe(path: Path | None) -> Recipe:
    """The recipe at `path` (or the built-in default), every step checked."""
    if path is None:
        text, base, source = default_recipe_text(), Path.cwd(), f"built-in {DEFAULT_RECIPE}"
    else:
        try:
            text = path.read_text()
        except OSError as exc:
            raise HfaidError(f"cannot read recipe {path}: {exc.strerror}") from None
        base, source = path.resolve().parent, str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HfaidError(f"recipe {source}: not valid TOML: {exc}") from None
    unknown = set(data) - {"recipe", "plan", "step"}
    if unknown:
        raise HfaidError(f"recipe {source}: unknown section(s) {', '.join(sorted(unknown))} "
                         "(known: [recipe], [plan], [[step]])")
    raw_steps = data.get("step", [])
    if not isinstance(raw_steps, list) or not raw_steps:
        raise HfaidError(f"recipe {source}: no [[step]] tables")
    steps = [_step(raw, i, source) for i, raw in enumerate(raw_steps, 1)]
    names = [s.name for s in steps]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise HfaidError(f"recipe {source}: step names must be unique; repeated: "
                         f"{', '.join(duplicated)} (give each a name = \"...\")")
    meta = data.get("recipe", {})
    return Recipe(str(meta.get("name", path.stem if path else "paper")), steps, base, source,
                  dict(data.get("plan", {})))


def _step(raw: dict[str, Any], index: int, source: str) -> Step:
    where = f"recipe {source}, step {index}"
    if not isinstance(raw, dict) or "command" not in raw:
        raise HfaidError(f"{where}: needs command = \"...\" (an hfaid command)")
    command = str(raw["command"])
    options = {k: v for k, v in raw.items() if k not in STEP_KEYS}
    name = str(raw.get("name") or (f"select-{options['stage']}" if command == "select"
                                   and "stage" in options else command))
    where = f"{where} ({name})"
    if command == AWAIT_REVIEWS:
        stage_input_option(str(options.get("stage_input", "review_queue")))
        unknown = set(options) - set(AWAIT_OPTIONS)
        if unknown:
            raise HfaidError(f"{where}: unknown option(s) {', '.join(sorted(unknown))}; "
                             f"{AWAIT_REVIEWS} takes {', '.join(AWAIT_OPTIONS)}")
        options = {**AWAIT_OPTIONS, **options}
        if not isinstance(options["min_decided"], int | float) or not (
                0.0 <= options["min_decided"] <= 1.0):
            raise HfaidError(f"{where}: min_decided must be a number in [0, 1]")
    else:
        if "stage_input" in options:  # the funnel's names, checked before anything runs
            stage_input_option(str(options["stage_input"]))
        params = command_params(command, where)
        unknown = set(options) - set(params)
        if unknown:
            raise HfaidError(f"{where}: `hfaid {command}` has no option "
                             f"{', '.join(sorted(unknown))}; it takes {', '.join(sorted(params))}")
    return Step(name, command, options, bool(raw.get("optional", False)))


def command_params(command: str, where: str = "recipe") -> dict[str, Any]:
    """The click parameters of `hfaid COMMAND` a recipe may set, by Python name."""
    if command in NOT_STEPS:
        raise HfaidError(f"{where}: `{command}` cannot be a recipe step"
                         + (f" (the step where people vote is `{AWAIT_REVIEWS}`)"
                            if command == "review" else ""))
    group = typer.main.get_command(app)
    found = group.commands.get(command) if hasattr(group, "commands") else None
    if found is None:
        raise HfaidError(f"{where}: no hfaid command {command!r}")
    return {p.name: p for p in found.params if p.name not in RUN_OPTIONS}


def step_argv(step: Step, base: Path) -> list[str]:
    """The command line for a step: `[command, positional..., --option value, ...]`."""
    params = command_params(step.command)
    group = typer.main.get_command(app)
    hints = typing.get_type_hints(group.commands[step.command].callback)
    positional: list[str] = []
    flags: list[str] = []
    for key, value in step.options.items():
        param = params[key]
        is_path = _is_path(hints.get(key))
        values = value if isinstance(value, list) else [value]
        texts = [_text(v, base if is_path else None) for v in values]
        if param.param_type_name == "argument":
            positional += texts
        elif getattr(param, "is_flag", False) and isinstance(value, bool):
            if value:
                flags.append(param.opts[0])
            elif param.secondary_opts:
                flags.append(param.secondary_opts[0])
        elif param.multiple:
            for text in texts:
                flags += [param.opts[0], text]
        else:  # a list for a single option: comma-separated, as in `--metrics a,b`
            flags += [param.opts[0], ",".join(texts)]
    return [step.command, *positional, *flags]


def _is_path(annotation: Any) -> bool:
    if annotation is Path:
        return True
    return any(_is_path(a) for a in typing.get_args(annotation))


def _text(value: Any, base: Path | None) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if base is not None and text and not Path(text).expanduser().is_absolute():
        return str(base / text)
    return str(Path(text).expanduser()) if base is not None else text
