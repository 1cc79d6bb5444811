"""Job progress as a hook: the shard runner reports items done; the command line draws the bar."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

Advance = Callable[[int], None]
ProgressFactory = Callable[[str, int], AbstractContextManager[Advance]]


@contextmanager
def _silent(description: str, total: int) -> Iterator[Advance]:
    yield lambda n: None


_factory: ProgressFactory = _silent


def set_item_progress(factory: ProgressFactory) -> None:
    """Install how jobs show progress (the CLI installs its rich bar; library use stays quiet)."""
    global _factory
    _factory = factory


@contextmanager
def item_progress(description: str, total: int) -> Iterator[Advance]:
    """Yield advance(n) from the installed factory; a no-op unless the CLI installed one."""
    with _factory(description, total) as advance:
        yield advance
