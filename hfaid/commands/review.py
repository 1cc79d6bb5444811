"""`hfaid review` starts the review app; `hfaid reviewers ...` manages its accounts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

import review_app
from db.accounts import add_reviewer, list_reviewers, reset_password, set_disabled
from db.images import images_passing
from db.review import state_counts
from hfaid.app import app
from hfaid.lifecycle import wait_child
from hfaid.options import (
    CatalogOpt,
    ConfigOpt,
    JsonOpt,
    open_for_reading,
    open_for_writing,
    recorded_run,
    stage_input_option,
)
from hfaid.output import stdout
from hfaid_core.errors import HfaidError
from review_app.server_env import ENV_CATALOG, ENV_CONFIG, ENV_RUN, ENV_STAGE

# The Starlette app (st.App) that serves the Streamlit pages plus the review API.
APP_SCRIPT = Path(review_app.__file__).resolve().parent / "server.py"

reviewers_app = typer.Typer(help="Reviewer accounts for the review app.", no_args_is_help=True)
app.add_typer(reviewers_app, name="reviewers")


def streamlit_argv(host: str, port: int) -> list[str]:
    """The `streamlit run` command line for the review app."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP_SCRIPT),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--client.toolbarMode",
        "minimal",
        "--server.runOnSave",
        "false",
        # Streamlit's default full gc.collect() after every rerun took ~40 ms with the GIL held
        # (catalog, Arrow and PIL objects in the heap), stalling every other session; Python's
        # own generational collector still runs.
        "--runner.postScriptGC",
        "false",
    ]


@app.command()
def review(
    host: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0 for the LAN).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8501,
    stage_input: Annotated[
        str | None,
        typer.Option(
            "--stage-input",
            help="Images that passed this stage form the queue ('ingest' = every image) "
            "[default: [review] stage_input, i.e. review_queue].",
        ),
    ] = None,
    prepare: Annotated[
        bool, typer.Option(help="Build every queued image's preview and crops before serving.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the queue it would serve, then exit.")
    ] = False,
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Serve the two-reviewer review app (Streamlit) until interrupted (Ctrl-C, SIGTERM)."""
    cat, cfg = open_for_writing(catalog, config)
    stage = stage_input if stage_input is not None else cfg.review.stage_input
    queue_input = stage_input_option(stage)
    queue = images_passing(cat, queue_input)
    if queue.num_rows == 0:
        stdout.print(
            f"note: no image has passed stage {stage!r} yet, so the queue is empty "
            "(pick another with --stage-input, e.g. --stage-input dedup)"
        )
    if not list_reviewers(cat):
        stdout.print("note: no reviewer accounts yet; add one with `hfaid reviewers add NAME`")
    if dry_run:
        stdout.print(f"review queue: {queue.num_rows} images that passed {stage!r}")
        return
    if prepare and queue.num_rows:
        from review_app.previews import PreviewCache

        cache = PreviewCache(cat.work_dir / "previews", cfg.review, cfg.decode.max_pixels)
        built = cache.prepare(
            list(zip(queue["image_id"].to_pylist(), queue["path"].to_pylist(), strict=True)),
            workers=os.cpu_count() or 1,
        )
        stdout.print(f"prepared previews for {built} image(s)")
    settings = {"host": host, "port": port, "stage_input": stage, "review": cfg.section("review")}
    with recorded_run(cat, "review", settings) as run:
        env = {
            **os.environ,
            ENV_CATALOG: str(cat.path.resolve()),
            ENV_STAGE: queue_input or "all",  # the server reads the name this command resolved
            ENV_RUN: str(run.run_id),
        }
        if config is not None:
            env[ENV_CONFIG] = str(Path(config).resolve())
        stdout.print(
            f"review app on http://{host}:{port} (queue: {queue.num_rows} images that "
            f"passed {stage!r}); Ctrl-C stops it"
        )
        # Ctrl-C, SIGTERM and SIGHUP reach the server too, and this waits until it has stopped:
        # stopping `hfaid review` never leaves a server serving the catalog on its own.
        code = wait_child(subprocess.Popen(streamlit_argv(host, port), env=env), reraise=False)
        run.counts = state_counts(cat, queue_input)
        if code not in (0, -signal.SIGTERM, -signal.SIGINT, -signal.SIGHUP):
            raise HfaidError(f"the review server exited with code {code}")


def _password(password_file: Path | None) -> str:
    if password_file is None:
        return typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        lines = password_file.read_text().splitlines()
    except OSError as exc:
        raise HfaidError(f"cannot read password file {password_file}: {exc.strerror}") from None
    if not lines or not lines[0]:
        raise HfaidError(f"password file {password_file} is empty")
    return lines[0]


PasswordFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--password-file",
        help="Read the password from the first line of this file (else a prompt).",
    ),
]


@reviewers_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Option(help="reviewer or admin.")] = "reviewer",
    password_file: PasswordFileOpt = None,
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Create a reviewer account (the password is stored as an argon2 hash)."""
    cat, _ = open_for_writing(catalog, config)
    add_reviewer(cat, name, role, _password(password_file))
    stdout.print(f"added {role} {name}")


@reviewers_app.command("list")
def list_(catalog: CatalogOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """List accounts with their role and whether they are disabled."""
    cat, _ = open_for_reading(catalog, config)
    rows = [{"name": r.name, "role": r.role, "disabled": r.disabled} for r in list_reviewers(cat)]
    if as_json:
        print(json.dumps(rows))
        return
    if not rows:
        stdout.print("no reviewer accounts")
    for r in rows:
        stdout.print(f"{r['name']:<24} {r['role']:<9} {'disabled' if r['disabled'] else 'active'}")


@reviewers_app.command("disable")
def disable(name: str, catalog: CatalogOpt = None, config: ConfigOpt = None) -> None:
    """Stop an account from logging in or voting (its votes stay)."""
    cat, _ = open_for_writing(catalog, config)
    set_disabled(cat, name, True)
    stdout.print(f"disabled {name}")


@reviewers_app.command("enable")
def enable(name: str, catalog: CatalogOpt = None, config: ConfigOpt = None) -> None:
    """Re-enable a disabled account."""
    cat, _ = open_for_writing(catalog, config)
    set_disabled(cat, name, False)
    stdout.print(f"enabled {name}")


@reviewers_app.command("reset-password")
def reset(
    name: str,
    password_file: PasswordFileOpt = None,
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Set a new password for an account."""
    cat, _ = open_for_writing(catalog, config)
    reset_password(cat, name, _password(password_file))
    stdout.print(f"password reset for {name}")


DEMO_ACCOUNTS = (("alice", "reviewer"), ("bob", "reviewer"), ("admin", "admin"))
DEMO_PASSWORD = "hfaid-demo"
# The demo's queue: the furthest funnel stage that passed images (selection may be absent).
DEMO_QUEUE_STAGES = ("review_queue", "aesthetic", "quality", "dedup", "clean")


def serve_demo(directory: Path, start: bool = True) -> None:
    """Create the demo's reviewer accounts, print how to log in, and (if `start`) serve the app."""
    from hfaid.cli import main

    catalog, config = directory / "hfaid.duckdb", directory / "hfaid.toml"
    cat, _ = open_for_writing(catalog, config)
    existing = {r.name for r in list_reviewers(cat)}
    for name, role in DEMO_ACCOUNTS:
        if name not in existing:
            add_reviewer(cat, name, role, DEMO_PASSWORD, actor="demo")
    stage = next((s for s in DEMO_QUEUE_STAGES if images_passing(cat, s).num_rows), "ingest")
    argv = ["review", "--stage-input", stage, "--catalog", str(catalog), "--config", str(config)]
    stdout.print(
        "review app accounts: " + ", ".join(f"{n} ({r})" for n, r in DEMO_ACCOUNTS)
        + f", password {DEMO_PASSWORD!r}; log in as alice and bob in two browsers to reach "
        "the two votes an image needs, and as admin to settle splits"
    )
    if not start:
        stdout.print("start it with `hfaid " + " ".join(argv) + "`")
        return
    code = main(argv)
    if code != 0:
        raise HfaidError(f"`hfaid {' '.join(argv)}` failed (exit {code})")
