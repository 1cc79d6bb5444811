"""The `hfaid` console script: imports every command module and turns errors into one line."""

from __future__ import annotations

import importlib
import os
import sys
from multiprocessing import spawn

import typer

from curation.cli_app import app
from curation.errors import HfaidError
from db.errors import CatalogError

# Each module registers its commands on `app` when imported.
COMMAND_MODULES = (
    "curation.commands.catalog_cmds",
    "curation.commands.ingest_cmd",
    "curation.commands.stage1_cmd",
    "curation.commands.demo_cmd",
    "curation.commands.score_cmd",
    "curation.commands.select_cmd",
    "curation.commands.report_cmd",
    "curation.commands.study_cmd",
    "curation.commands.caption_cmd",
    "curation.commands.review_cmd",
    "curation.commands.export_cmd",
    "curation.commands.finetune_cmd",
)

# A spawned worker process imports the console script as its __mp_main__ and runs no command:
# skipping the command modules (torch, Streamlit's account code, ...) saves ~0.5 s per worker.
if not spawn.is_forking(sys.argv):
    for _module in COMMAND_MODULES:
        importlib.import_module(_module)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors print one line and exit 2, a bug exits 1 without a traceback."""
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
