"""Where a scoring worker's time goes, and what that says about what limits the job."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

# The parts of a model process's time (seconds; summed over shards and processes by the runner):
DECODE_WAIT = "decode_wait"  # blocked on the decode workers (without any: decoding itself)
LAUNCH = "launch"  # forwards queued: on CPU the forwards themselves, on a GPU kernel launches
RESULT_WAIT = "result_wait"  # reading scores: on a GPU, waiting for the device to finish
TOTAL = "total"  # all of `ScoreWorker.process`; the rest is joining pieces and building rows

PART_NAMES = {
    DECODE_WAIT: "waiting for decoded images",
    LAUNCH: "running / queuing the models",
    RESULT_WAIT: "waiting for the device's results",
}
DECODE_BOUND_SHARE = 0.25  # above this, more decode workers would speed the job up
NOTE_AFTER_S = 30.0  # shorter jobs get no note: their start and a few bad files dominate them


class PartTimes:
    """Wall seconds per part, kept until taken."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - started

    def take(self) -> dict[str, float]:
        taken = dict(self.seconds)
        self.seconds.clear()
        return taken


def shares(timings: dict[str, float]) -> dict[str, float]:
    """Each part's share of the model processes' total time (empty without a total)."""
    total = timings.get(TOTAL, 0.0)
    if total <= 0:
        return {}
    found = {PART_NAMES[k]: timings.get(k, 0.0) / total for k in PART_NAMES}
    found["other (joining batches, result rows)"] = max(0.0, 1.0 - sum(found.values()))
    return found


def bottleneck_note(timings: dict[str, float], decode_workers: int) -> str | None:
    """A line for the user when decode workers, not the models, set the job's speed. Model
    processes that decode in-process (several on CPU) get none: there decoding is their work,
    on cores that are all busy, not a wait that more workers would shorten."""
    total = timings.get(TOTAL, 0.0)
    share = timings.get(DECODE_WAIT, 0.0) / total if total > 0 else 0.0
    if decode_workers == 0 or total < NOTE_AFTER_S or share < DECODE_BOUND_SHARE:
        return None
    return (
        f"The models waited for decoded images {share:.0%} of the time, so decoding limits this "
        f"job. More decode workers (--decode-workers, [score] decode_workers; {decode_workers} "
        "per model process now) would speed it up if this machine has idle cores."
    )
