"""`--engine ray`: a ShardJob on Ray Data, one actor per GPU (or CPU slot), same merge step."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa

from hfaid_core.errors import HfaidError
from hfaid_core.progress import item_progress
from hfaid_core.runner import (
    JobStats,
    ShardJob,
    _merge_and_remove,
    recover_leftovers,
    release_run_dir,
    worker_timings,
    write_result,
)
from hfaid_core.shm_buffers import PROCESSES_ENV


def actors_per_node(node_resources: dict[str, float], gpu: bool, concurrency: int) -> int:
    """At most how many of the job's actors share one node: one per GPU (or CPU) it has."""
    slots = int(node_resources.get("GPU" if gpu else "CPU", 1))
    return max(1, min(slots, concurrency))


class ShardActor:
    """A Ray actor: builds the job's worker once, turns each block into one result file."""

    def __init__(self, worker_factory, results_dir: str, gpu: bool, concurrency: int) -> None:
        import ray

        node = ray.get_runtime_context().get_node_id()
        resources = next(n["Resources"] for n in ray.nodes() if n["NodeID"] == node)
        # The actors of one node share its /dev/shm; each alone would size its decode workers'
        # buffers for all of it (shm_buffers.shared_memory_share reads this).
        os.environ[PROCESSES_ENV[0]] = str(actors_per_node(resources, gpu, concurrency))
        self.results_dir = Path(results_dir)
        self.token = uuid.uuid4().hex[:8]
        self.count = 0
        self.error = ""
        try:
            self.worker = worker_factory()
        except HfaidError as exc:
            # Returned as data with the first block: raised here, Ray would report the actor's
            # death with a traceback that buries the message (a missing weights file, say).
            self.error = f"{exc} (Ray node {ray.util.get_node_ip_address()})"

    def __call__(self, items: pa.Table) -> pa.Table:
        if self.error:
            return _block_report("", 0, self.error)
        try:
            result = self.worker.process(items)
        except HfaidError as exc:
            return _block_report("", 0, str(exc))
        self.count += 1
        # Same naming and temp-then-rename as the local runner, so leftovers resume the same way.
        path = self.results_dir / f"{int(time.time())}-ray{self.token}-{self.count:06d}.parquet"
        write_result(result, path)
        return _block_report(str(path), items.num_rows, "", worker_timings(self.worker))


def _block_report(
    file: str, items: int, error: str, timings: dict[str, float] | None = None
) -> pa.Table:
    """What an actor returns per block: its result file, item count and the worker's timings
    (JSON), or why it failed."""
    return pa.table(
        {"file": [file], "items": [items], "error": [error], "timings": [json.dumps(timings or {})]}
    )


@contextmanager
def ray_connection(address: str | None = None) -> Iterator[Any]:
    """The ray module, connected for the block: started here (and stopped after) unless this
    process is already connected."""
    try:
        import ray
    except ImportError:
        raise HfaidError("--engine ray needs Ray: pip install 'hfaid[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(
            address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True
        )
    try:
        yield ray
    finally:
        if started_here:
            ray.shutdown()


def _require_gpus(ray) -> int:
    gpus = int(ray.cluster_resources().get("GPU", 0))
    if gpus == 0:
        raise HfaidError("--engine ray --device cuda: the Ray cluster has no GPUs")
    return gpus


def run_on_a_slot(fn: Callable[..., Any], *args: Any, gpu: bool) -> Any:
    """fn(*args) in a task on one of the job's slots (a GPU of a GPU node for a GPU job), for
    what only a worker's machine can tell: a head node without a GPU cannot tell whether the
    cluster's GPUs compute in bf16 or fp16. Its HfaidError comes back as one here."""
    with ray_connection() as ray:
        if gpu:
            _require_gpus(ray)
        task = ray.remote(num_gpus=1 if gpu else 0, num_cpus=0 if gpu else 1)(_result_or_error)
        result, error = ray.get(task.remote(fn, *args))
    if error:
        raise HfaidError(error)
    return result


def _result_or_error(fn: Callable[..., Any], *args: Any) -> tuple[Any, str]:
    import ray

    try:
        return fn(*args), ""
    except HfaidError as exc:  # as data: a task's exception reaches the driver as a traceback
        return None, f"{exc} (Ray node {ray.util.get_node_ip_address()})"


def run_job_ray(
    job: ShardJob, device: str = "cpu", actors: int = 0, address: str | None = None
) -> JobStats:
    """Recover leftovers, run pending shards on Ray actors, merge result files as they land."""
    started = time.perf_counter()
    results_dir, stats = recover_leftovers(job)
    pending = job.pending()
    stats.items = pending.num_rows
    if pending.num_rows:
        with ray_connection(address) as ray:
            _run_on_ray(ray, job, pending, results_dir, device.startswith("cuda"), actors, stats)
    release_run_dir(results_dir)
    stats.seconds = time.perf_counter() - started
    return stats


def _run_on_ray(
    ray,
    job: ShardJob,
    pending: pa.Table,
    results_dir: Path,
    gpu: bool,
    actors: int,
    stats: JobStats,
) -> None:
    slots = _require_gpus(ray) if gpu else int(ray.cluster_resources().get("CPU", 1))
    concurrency = max(1, min(actors or slots, slots))
    # One block per shard, so every actor gets work and a result file is one shard as locally.
    ds = ray.data.from_arrow(
        [pending.slice(o, job.shard_size) for o in range(0, pending.num_rows, job.shard_size)]
    )
    out = ds.map_batches(
        ShardActor,
        fn_constructor_args=(job.worker_factory, str(results_dir), gpu, concurrency),
        batch_size=job.shard_size,
        batch_format="pyarrow",
        concurrency=concurrency,
        num_gpus=1 if gpu else 0,
        num_cpus=0 if gpu else 1,
    )
    finished: list[Path] = []
    last_merge = time.monotonic()
    with item_progress(job.description or job.name, stats.items) as advance:
        for batch in out.iter_batches(batch_format="pyarrow", batch_size=None):
            for file, count, error, timings in zip(
                batch["file"].to_pylist(),
                batch["items"].to_pylist(),
                batch["error"].to_pylist(),
                batch["timings"].to_pylist(),
                strict=True,
            ):
                if error:
                    stats.rows_merged += _merge_and_remove(job.merge, finished)
                    raise HfaidError(error)
                finished.append(Path(file))
                stats.add_timings(json.loads(timings))
                stats.shards += 1
                advance(count)
            if time.monotonic() - last_merge >= job.merge_every_s:
                stats.rows_merged += _merge_and_remove(job.merge, finished)
                finished, last_merge = [], time.monotonic()
    stats.rows_merged += _merge_and_remove(job.merge, finished)
