"""The `hfaid` console script: imports every command module and turns errors into one line."""

from __future__ import annotations

import importlib
import os
import sys
from multiprocessing import spawn

import typer

from db.errors import CatalogError
from hfaid.app import app
from hfaid.output import item_progress
from hfaid_core.errors import HfaidError
from hfaid_core.progress import set_item_progress

# Each module registers its commands on `app` when imported.
COMMAND_MODULES = (
    "hfaid.commands.catalog",
    "hfaid.commands.ingest",
    "hfaid.commands.stage1",
    "hfaid.commands.demo",
    "hfaid.commands.score",
    "hfaid.commands.select",
    "hfaid.commands.report",
    "hfaid.commands.study",
    "hfaid.commands.caption",
    "hfaid.commands.review",
    "hfaid.commands.export",
    "hfaid.commands.finetune",
    "hfaid.commands.evaluate",
)

# A spawned worker process imports the console script as its __mp_main__ and runs no command:
# skipping the command modules (torch, Streamlit's account code, ...) saves ~0.5 s per worker.
if not spawn.is_forking(sys.argv):
    for _module in COMMAND_MODULES:
        importlib.import_module(_module)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors print one line and exit 2, a bug exits 1 without a traceback."""
    set_item_progress(item_progress)  # jobs below the CLI report progress; this draws the bar
    try:
        app(args=argv, standalone_mode=False)
    except (HfaidError, CatalogError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(
            "interrupted: finished shards are saved; re-run the command to resume",
            file=sys.stderr,
        )
        return 130
    except typer.TyperException as exc:  # usage errors: typer prints them like click does
        exc.show()
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except Exception as exc:  # an unexpected bug: one line, traceback only when asked for
        if os.environ.get("HFAID_DEBUG"):
            raise
        print(f"internal error: {type(exc).__name__}: {exc} (set HFAID_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
