"""Options and helpers shared by every command: catalog, config, and run bookkeeping."""

from __future__ import annotations

import importlib.metadata
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from db.catalog import Catalog, default_catalog_path
from db.migrate import migrate, require_current
from db.runs import finish_run, interrupted_runs, mark_interrupted, start_run
from db.stages import UnknownStageError, resolve_stage_input
from hfaid_core.config import Config, load_config
from hfaid_core.errors import HfaidError
from hfaid_core.processes import ProcessId, is_alive, this_process

CatalogOpt = Annotated[
    Path | None,
    typer.Option("--catalog", help="Catalog file [default: $HFAID_CATALOG or ./hfaid.duckdb]."),
]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="TOML config (defaults: docs/CONFIG.md).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]

RECORDED_PACKAGES = (
    "hfaid",
    "duckdb",
    "pillow",
    "numpy",
    "opencv-python-headless",
    "imagehash",
    "torch",
    "pyiqa",
    "transformers",
)


def resolve(catalog: Path | None, config: Path | None) -> tuple[Catalog, Config]:
    """The catalog and config a command works on."""
    cfg = load_config(config)
    return Catalog(catalog or default_catalog_path(), cfg.catalog.lock_timeout_s), cfg


def open_for_writing(catalog: Path | None, config: Path | None) -> tuple[Catalog, Config]:
    """Resolve, then create or upgrade the catalog so the command can write."""
    cat, cfg = resolve(catalog, config)
    migrate(cat)
    return cat, cfg


def open_for_reading(catalog: Path | None, config: Path | None) -> tuple[Catalog, Config]:
    """Resolve and require an existing, fully migrated catalog."""
    cat, cfg = resolve(catalog, config)
    require_current(cat)
    return cat, cfg


def stage_input_option(name: str) -> str | None:
    """A --stage-input value (a funnel stage, `all`, `accepted`) as the stage whose passed images
    the command reads; None = every ingested image. The same meaning in every command."""
    try:
        return resolve_stage_input(name)
    except UnknownStageError as exc:
        raise HfaidError(str(exc)) from None


def gpu_name(device: str) -> str:
    """The CUDA device's name ("NVIDIA H100 80GB HBM3"), "" elsewhere; runs record it so that
    `hfaid plan` takes rates from runs on the GPU kind it plans for."""
    if not device.startswith("cuda"):
        return ""
    import torch

    return torch.cuda.get_device_name(device) if torch.cuda.is_available() else ""


def package_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Installed versions of the packages whose behaviour a run depends on."""
    versions = {}
    for name in RECORDED_PACKAGES + extra:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


class RunRecord:
    """Mutable counts a command fills in; stored when the run closes."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self.counts: dict[str, Any] = {}
        self.status = "done"  # a job that stopped early on an interrupt says "interrupted"


def process_alive(pid: int, started: float, host: str) -> bool:
    """db.runs' liveness check: is the process that started a run still the one running?"""
    return is_alive(ProcessId(pid, started, host))


@contextmanager
def recorded_run(catalog: Catalog, command: str, config: dict[str, Any]) -> Iterator[RunRecord]:
    """Record a run's start, and its end as done, failed or interrupted. Runs of the same
    command whose process died (kill -9, a lost machine) are marked interrupted, and this run
    says that it resumes them (finished shards were kept; the rest is pending again)."""
    stale = interrupted_runs(catalog, command, process_alive)
    if stale:
        mark_interrupted(catalog, [r["run_id"] for r in stale])
        for run in stale:
            started = f"{run['started_at']:%Y-%m-%d %H:%M:%S}"
            print(f"resuming {command} run {run['run_id']} (started {started}, interrupted: "
                  f"its process {run['pid']} is gone)", file=sys.stderr)
    me = this_process()
    owner = (me.pid, me.started, me.host)
    record = RunRecord(start_run(catalog, command, config, package_versions(), owner))
    try:
        yield record
    except KeyboardInterrupt:
        finish_run(catalog, record.run_id, "interrupted", record.counts)
        raise
    except BaseException:
        finish_run(catalog, record.run_id, "failed", record.counts)
        raise
    finish_run(catalog, record.run_id, record.status, record.counts)
