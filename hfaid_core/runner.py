"""The shard runner: pending work split into shards, result files renamed into place, one merge.

Contract (DESIGN.md): a worker turns a shard into a Parquet result file written under a temp
name and renamed; it never raises for one bad item. The main process merges finished result
files into the catalog; a shard is finished once merged. Leftover result files from a killed
run are merged before the pending set is computed, and every merge is idempotent, so killing a
job at any moment and re-running it gives the catalog of one clean run.

Each run writes into its own folder, `<work>/<job>/run-<run_id>-<token>/`, whose `owner.json`
names its process (pid, start time, host). Another run of the job adopts a folder only once that
process is gone, so two jobs at once (two ingests of different folders) never take each
other's files: the adopting run renames the folder into its own first (atomic: one run gets it).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import pyarrow as pa
import pyarrow.parquet as pq

from hfaid_core.processes import ProcessId, die_with_parent, is_alive, this_process
from hfaid_core.progress import item_progress

RESULT_SUFFIX = ".parquet"


class ShardWorker(Protocol):
    """Built once per worker process; turns a table of pending items into a result table."""

    def process(self, items: pa.Table) -> pa.Table: ...


@runtime_checkable
class TimedWorker(Protocol):
    """A worker that also tells where its time went (seconds per part, since it was last asked):
    the runner sums these over shards and workers into `JobStats.timings`."""

    def take_timings(self) -> dict[str, float]: ...


def worker_timings(worker: object) -> dict[str, float]:
    return worker.take_timings() if isinstance(worker, TimedWorker) else {}


WorkerFactory = Callable[[], ShardWorker]
MergeFn = Callable[[list[Path]], int]


@dataclass
class ShardJob:
    """One resumable job: what to do per shard and how finished shards reach the catalog."""

    name: str  # folder under the work dir; one per (command, version) so results never mix
    work_dir: Path
    pending: Callable[[], pa.Table]  # computed after leftovers are merged
    worker_factory: WorkerFactory  # picklable: a top-level class or functools.partial
    merge: MergeFn  # runs in the main process; must be idempotent
    shard_size: int = 256
    workers: int = 0  # 0 = os.cpu_count(); 1 = in this process (GPU jobs, tests)
    merge_every_s: float = 2.0  # batch merges: DuckDB prefers fewer, larger transactions
    description: str = ""
    # "fork" starts workers instantly and suits CPU-only jobs that never import torch;
    # "spawn" is the safe default once torch (and its thread pools) may be in the parent.
    start_method: str = "spawn"
    run_id: int | None = None  # the catalog's run, named in the run's work folder


@dataclass
class JobStats:
    items: int = 0
    shards: int = 0
    rows_merged: int = 0
    recovered_files: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    timings: dict[str, float] = field(default_factory=dict)  # summed `TimedWorker` timings

    def add_timings(self, timings: dict[str, float]) -> None:
        for part, seconds in timings.items():
            self.timings[part] = self.timings.get(part, 0.0) + seconds


def run_job(job: ShardJob) -> JobStats:
    """Recover leftovers, compute pending work, run it in shards and merge the results."""
    started = time.perf_counter()
    results_dir, stats = recover_leftovers(job)
    pending = job.pending()
    workers = job.workers or os.cpu_count() or 1
    shards = [
        pending.slice(offset, size)
        for offset, size in plan_shards(pending.num_rows, job.shard_size, workers)
    ]
    stats.items = pending.num_rows
    stats.shards = len(shards)
    if shards:
        runner = _run_inline if workers <= 1 else _run_pool
        try:
            runner(job, shards, results_dir, workers, stats)
        except KeyboardInterrupt:
            stats.interrupted = True
            stats.rows_merged += _merge_and_remove(job.merge, finished_result_files(results_dir))
    release_run_dir(results_dir)
    stats.seconds = time.perf_counter() - started
    return stats


def plan_shards(items: int, shard_size: int, workers: int) -> list[tuple[int, int]]:
    """(offset, size) of each shard: full shards, then shrinking ones near the end.

    With several workers, fixed-size shards can leave all but one worker idle for most of a
    shard at the end of the job. Guided sizes (at most the remaining work / 2 per worker, down
    to a sixteenth of a shard) make the workers finish together; in-process jobs keep fixed sizes.
    """
    shard_size = max(1, shard_size)
    floor = shard_size if workers <= 1 else max(1, shard_size // 16)
    plan, offset = [], 0
    while offset < items:
        remaining = items - offset
        size = min(shard_size, remaining, max(floor, -(-remaining // (2 * workers))))
        plan.append((offset, size))
        offset += size
    return plan


OWNER_FILE = "owner.json"


def recover_leftovers(job: ShardJob) -> tuple[Path, JobStats]:
    """This run's own results folder, after merging the result files that dead runs of the job
    left behind (a live run's are never touched); every backend calls this before computing
    the pending set, so nothing finished is redone."""
    job_dir = job.work_dir / job.name
    job_dir.mkdir(parents=True, exist_ok=True)
    results_dir = claim_run_dir(job_dir, job.run_id)
    stats = JobStats()
    leftovers = adopt_dead_runs(job_dir, results_dir)
    if leftovers:
        stats.recovered_files = len(leftovers)
        stats.rows_merged += _merge_and_remove(job.merge, leftovers)
    _remove_temp_files(results_dir)
    return results_dir, stats


def claim_run_dir(job_dir: Path, run_id: int | None) -> Path:
    """A new folder for this run, created with its owner file already inside (built under a
    temp name, then renamed), so no other run ever sees it without an owner."""
    token = uuid.uuid4().hex[:8]
    final = job_dir / (f"run-{run_id}-{token}" if run_id is not None else f"run-{token}")
    building = job_dir / f".tmp-{token}"
    building.mkdir()
    (building / OWNER_FILE).write_text(json.dumps(this_process().as_dict()))
    os.rename(building, final)
    return final


def adopt_dead_runs(job_dir: Path, results_dir: Path) -> list[Path]:
    """Moves the finished result files of runs whose process is gone into `results_dir` and
    returns them (with any left there earlier), oldest name first. A dead run's folder is taken
    by renaming it into ours, which only one adopting run can do; result files lying directly
    in `job_dir` (written before per-run folders) are taken one by one the same way."""
    for entry in sorted(job_dir.iterdir()):
        if entry == results_dir or entry.name.startswith(".tmp-"):
            continue
        if entry.is_file() and entry.suffix == RESULT_SUFFIX and not entry.name.startswith("."):
            with contextlib.suppress(FileNotFoundError):  # another run took it first
                os.rename(entry, results_dir / entry.name)
        elif entry.is_dir() and not _owner_alive(entry):
            taken = results_dir / f"adopted-{entry.name}"
            try:
                os.rename(entry, taken)
            except FileNotFoundError:  # another run adopted it first
                continue
            # (a run killed while adopting holds its catch in a folder of its own)
            for result in sorted(taken.rglob(f"*{RESULT_SUFFIX}")):
                if not result.name.startswith("."):
                    os.rename(result, results_dir / result.name)
            shutil.rmtree(taken, ignore_errors=True)
    return finished_result_files(results_dir)


def _owner_alive(run_dir: Path) -> bool:
    try:
        owner = ProcessId.from_dict(json.loads((run_dir / OWNER_FILE).read_text()))
    except (OSError, ValueError, KeyError, TypeError):  # no readable owner: not a live run's
        return False
    return is_alive(owner)


def release_run_dir(results_dir: Path) -> None:
    """Removes a run's folder once everything in it is merged (a kill leaves it for adoption)."""
    if not finished_result_files(results_dir):
        shutil.rmtree(results_dir, ignore_errors=True)


def finished_result_files(results_dir: Path) -> list[Path]:
    """Result files that were renamed into place (complete), oldest name first."""
    if not results_dir.exists():
        return []
    return sorted(
        p for p in results_dir.iterdir() if p.suffix == RESULT_SUFFIX and not p.name.startswith(".")
    )


def _remove_temp_files(results_dir: Path) -> None:
    for p in results_dir.glob(".tmp-*"):
        p.unlink(missing_ok=True)


def _merge_and_remove(merge: MergeFn, files: list[Path]) -> int:
    if not files:
        return 0
    merged = merge(files)
    # Only after the merge committed: a kill before this line re-merges idempotently.
    for f in files:
        f.unlink(missing_ok=True)
    return merged


_WORKER: ShardWorker | None = None


def _init_worker(factory: WorkerFactory, parent: int) -> None:
    global _WORKER
    die_with_parent(parent)
    _WORKER = factory()


def _process_shard(items: pa.Table, out_path: str) -> tuple[str, int, dict[str, float]]:
    if _WORKER is None:
        raise RuntimeError("shard worker was not initialised")
    path = write_result(_WORKER.process(items), Path(out_path))
    return path, items.num_rows, worker_timings(_WORKER)


def write_result(table: pa.Table, out_path: Path) -> str:
    """Write a result table under a temp name, then rename it into place (atomic on POSIX)."""
    tmp = out_path.with_name(f".tmp-{out_path.name}")
    pq.write_table(table, tmp)
    os.replace(tmp, out_path)
    return str(out_path)


_RUN_TOKEN = f"{int(time.time())}-{uuid.uuid4().hex[:8]}"


def _result_path(results_dir: Path, index: int) -> Path:
    # A per-process token keeps names from two runs apart; the index keeps merge order stable.
    return results_dir / f"{_RUN_TOKEN}-{index:06d}{RESULT_SUFFIX}"


class _BackgroundMerger:
    """Merges finished result files on a thread, so workers never wait for the catalog."""

    def __init__(self, merge: MergeFn, every_s: float) -> None:
        self._merge, self._every_s = merge, every_s
        self._pending: list[Path] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = False
        self._error: BaseException | None = None
        self.rows_merged = 0
        self._thread = threading.Thread(target=self._loop, name="hfaid-merge", daemon=True)
        self._thread.start()

    def add(self, path: Path) -> None:
        self._raise_if_failed()
        with self._lock:
            self._pending.append(path)

    def close(self) -> int:
        """Merge everything still pending and stop; re-raises a merge failure."""
        self._closing = True
        self._wake.set()
        self._thread.join()
        self._raise_if_failed()
        return self.rows_merged

    def _loop(self) -> None:
        while True:
            self._wake.wait(self._every_s)
            closing = self._closing
            with self._lock:
                batch, self._pending = self._pending, []
            try:
                self.rows_merged += _merge_and_remove(self._merge, batch)
            except BaseException as exc:  # surfaced in the main thread by add()/close()
                self._error = exc
                return
            if closing:
                return

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error


def _run_inline(job, shards, results_dir, workers, stats) -> None:
    worker = job.worker_factory()
    merger = _BackgroundMerger(job.merge, job.merge_every_s)
    try:
        with item_progress(job.description or job.name, stats.items) as advance:
            for index, shard in enumerate(shards):
                result = worker.process(shard)
                merger.add(Path(write_result(result, _result_path(results_dir, index))))
                stats.add_timings(worker_timings(worker))
                advance(shard.num_rows)
    finally:
        stats.rows_merged += merger.close()


def _run_pool(job, shards, results_dir, workers, stats) -> None:
    context = multiprocessing.get_context(job.start_method)
    merger = _BackgroundMerger(job.merge, job.merge_every_s)
    max_in_flight = workers * 4  # bounded so a million-image job does not queue everything
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_init_worker,
        initargs=(job.worker_factory, os.getpid()),
    )
    completed = False
    try:
        with item_progress(job.description or job.name, stats.items) as advance:
            in_flight: set[Future] = set()
            queue = iter(enumerate(shards))
            exhausted = False
            while in_flight or not exhausted:
                while not exhausted and len(in_flight) < max_in_flight:
                    nxt = next(queue, None)
                    if nxt is None:
                        exhausted = True
                        break
                    index, shard = nxt
                    out = str(_result_path(results_dir, index))
                    in_flight.add(pool.submit(_process_shard, shard, out))
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    path, count, timings = future.result()
                    merger.add(Path(path))
                    stats.add_timings(timings)
                    advance(count)
        completed = True
    finally:
        # Once every shard is done, idle workers exit (~0.1 s of interpreter teardown) while the
        # last merge and the caller's next step run. After an error, queued shards are dropped
        # and running ones are waited for, so no worker writes a result file after we return.
        pool.shutdown(wait=not completed, cancel_futures=True)
        stats.rows_merged += merger.close()
