"""`hfaid demo`: `hfaid run` on the demo recipe over a bundled pool, then the review app."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer

from curation.demo.pool import build_demo_pool
from curation.demo.steps import DEMO_CONFIG, demo_recipe
from hfaid.app import app
from hfaid.options import resolve
from hfaid.orchestrate import EXIT_WAITING, preflight, run_steps
from hfaid.output import stdout
from hfaid.recipe import load_recipe
from hfaid_core.errors import HfaidError


@app.command()
def demo(
    directory: Annotated[
        Path, typer.Option("--dir", help="Where the demo pool and catalog go.")
    ] = Path("hfaid-demo"),
    fresh: Annotated[bool, typer.Option(help="Delete an earlier demo folder first.")] = True,
    serve: Annotated[bool, typer.Option(help="Start the review app at the end.")] = True,
) -> None:
    """Build ./hfaid-demo from bundled photos with planted defects, run the demo recipe on it
    (`hfaid run`, up to the reviews), and serve the review app."""
    from hfaid.cli import main  # the funnel prints through the entry point users type

    if fresh and directory.exists():
        if not (directory / "hfaid.duckdb").exists() and any(directory.iterdir()):
            raise HfaidError(f"{directory} exists and is not an hfaid demo folder; pick --dir")
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    counts = build_demo_pool(directory)
    catalog, config, recipe = (directory / "hfaid.duckdb", directory / "hfaid.toml",
                               directory / "recipe.toml")
    config.write_text(DEMO_CONFIG)
    recipe.write_text(demo_recipe(directory))
    stdout.print(
        f"demo pool in {directory}/pool: " + ", ".join(f"{k} {v}" for k, v in counts.items())
    )
    loaded = load_recipe(recipe)
    cat, cfg = resolve(catalog, config)
    state = run_steps(loaded, loaded.steps, cat, config, preflight(loaded.steps, loaded.base,
                                                                   cat, cfg))
    if state.code not in (0, EXIT_WAITING):
        raise HfaidError(f"demo stopped: {state.stopped}")
    stdout.rule("hfaid funnel")
    main(["funnel", "--catalog", str(catalog)])
    again = f"hfaid run --recipe {recipe} --catalog {catalog} --config {config}"
    stdout.print(
        f"catalog: {catalog}; explore it with "
        f'`hfaid sql "SELECT * FROM stage_outcomes LIMIT 20" --catalog {catalog}`; '
        f"once the queue is reviewed, `{again}` captions and exports the accepted images",
        markup=False,
    )
    from hfaid.commands.review import serve_demo  # demo reviewer accounts, then the app

    serve_demo(directory, start=serve)
