"""`hfaid demo`: the whole pipeline on a bundled pool of real photographs."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer

from curation.demo.pool import build_demo_pool
from curation.demo.steps import DEMO_CONFIG, DEMO_STEPS, demo_argv
from hfaid.app import app
from hfaid.output import stdout
from hfaid_core.errors import HfaidError


@app.command()
def demo(
    directory: Annotated[
        Path, typer.Option("--dir", help="Where the demo pool and catalog go.")
    ] = Path("hfaid-demo"),
    fresh: Annotated[bool, typer.Option(help="Delete an earlier demo folder first.")] = True,
    serve: Annotated[bool, typer.Option(help="Start the review app at the end.")] = True,
) -> None:
    """Build ./hfaid-demo from bundled photos with planted defects and run every stage on it."""
    from hfaid.cli import main  # the steps run through the same entry point users type

    if fresh and directory.exists():
        if not (directory / "hfaid.duckdb").exists() and any(directory.iterdir()):
            raise HfaidError(f"{directory} exists and is not an hfaid demo folder; pick --dir")
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    counts = build_demo_pool(directory)
    (directory / "hfaid.toml").write_text(DEMO_CONFIG)
    stdout.print(
        f"demo pool in {directory}/pool: " + ", ".join(f"{k} {v}" for k, v in counts.items())
    )
    for step in DEMO_STEPS + [["funnel"]]:
        argv = demo_argv(step, directory)
        stdout.rule("hfaid " + " ".join(argv[: len(step)]))
        code = main(argv)
        if code != 0:
            raise HfaidError(f"demo step `hfaid {' '.join(argv)}` failed (exit {code})")
    stdout.print(
        f"catalog: {directory / 'hfaid.duckdb'}; explore it with "
        f'`hfaid sql "SELECT * FROM stage_outcomes LIMIT 20" '
        f'--catalog {directory / "hfaid.duckdb"}`'
    )
    from hfaid.commands.review import serve_demo  # demo reviewer accounts, then the app

    serve_demo(directory, start=serve)
