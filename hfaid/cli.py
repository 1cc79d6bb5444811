"""The `hfaid` console script: imports every command module and turns errors into one line."""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import warnings
from multiprocessing import spawn

import typer

from db.errors import CatalogError
from hfaid.app import app
from hfaid.jobs import EXIT_ALL_FAILED, AllFailedError
from hfaid.lifecycle import install_signal_handlers, received_signal
from hfaid.output import item_progress
from hfaid_core.errors import HfaidError
from hfaid_core.progress import set_item_progress

# Third-party notices that say nothing to a user of hfaid, silenced here (in the entry point and
# the worker processes that import it) and never for our own packages. bitsandbytes logs "Failed
# to load CPU gemm_4bit_forward from kernels-community" on CPUs with AVX512-BF16 whenever a
# model library imports it: an optional 4-bit CPU kernel that hfaid never uses on CPU.
QUIET_LOGGERS = ("bitsandbytes",)
QUIET_WARNING_MODULES = (
    r"(bitsandbytes|kernels|torch|torchvision|transformers|diffusers|timm|pyiqa|accelerate"
    r"|huggingface_hub|streamlit)(\.|$)"
)
SHOW_WARNINGS_ENV = "HFAID_DEPENDENCY_WARNINGS"  # set to 1 to see them again


def quiet_dependencies() -> None:
    """Silence the dependencies' own warnings and notices (see QUIET_WARNING_MODULES)."""
    if os.environ.get(SHOW_WARNINGS_ENV):
        return
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=QUIET_WARNING_MODULES)


quiet_dependencies()

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
    "hfaid.commands.run",
)

# A spawned worker process imports the console script as its __mp_main__ and runs no command:
# skipping the command modules (torch, Streamlit's account code, ...) saves ~0.5 s per worker.
if not spawn.is_forking(sys.argv):
    for _module in COMMAND_MODULES:
        importlib.import_module(_module)


# Exit codes (README.md): 0 done, 1 internal error, 2 bad input, 3 every image of a per-image
# job failed, 4 `hfaid run` stopped to wait for reviews, 128 + N stopped by signal N (130 Ctrl-C).
EXIT_INTERNAL, EXIT_BAD_INPUT = 1, 2
TYPER_INTERRUPTED = 130  # typer returns this for a KeyboardInterrupt raised inside a command


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors print one line and exit 2, a bug exits 1 without a traceback."""
    set_item_progress(item_progress)  # jobs below the CLI report progress; this draws the bar
    install_signal_handlers()
    try:
        # Without standalone mode click hands back the code of a `typer.Exit` (e.g. exit 4).
        code = app(args=argv, standalone_mode=False)
    except (HfaidError, CatalogError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except AllFailedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ALL_FAILED
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        return _interrupted()
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
        return EXIT_INTERNAL
    if code == TYPER_INTERRUPTED:
        return _interrupted()
    return code if isinstance(code, int) else 0


def _interrupted() -> int:
    """Ctrl-C, SIGTERM or SIGHUP: one line, exit 128 + the signal (130 for Ctrl-C)."""
    signum = received_signal() or signal.SIGINT
    print(
        f"{'interrupted' if signum == signal.SIGINT else signal.Signals(signum).name}: "
        "finished shards are saved; re-run the command to resume",
        file=sys.stderr,
    )
    return 128 + signum


if __name__ == "__main__":
    sys.exit(main())
