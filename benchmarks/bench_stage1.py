"""Stage 1 (decode check + measurements + pHash) vs a bare full PIL decode and the previous
commit's stage 1, side by side; the new measures' own cost; what the shipped cuts flag.

Run: .venv/bin/python benchmarks/bench_stage1.py [--small] [--repeats 3] [--previous DIR]
All rows read the same 2-4 MP JPEGs from the page cache with the same number of spawned
processes: a bare full decode, the previous commit's stage-1 worker (a checkout at DIR, e.g.
`git worktree add DIR <commit>`, imported through PYTHONPATH in a subprocess), this commit's
worker, `hfaid clean`'s job end to end (worker start-up, runner, catalog merges, decide) and
the `hfaid clean` command in a subprocess. All are interleaved per repeat and reported as the
median; so is each worker's CPU time in one process (`--cpu-images`), the comparison that other
jobs on a shared machine move least. Then one process times each new measure per image, and the
job's outcomes with the shipped [clean] defaults are counted by reason.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).parent))
from photo_pool import build_photo_pool  # noqa: E402

from curation.stage1.clean import CleanWorker  # noqa: E402
from hfaid_core.settings.stage1 import CleanConfig  # noqa: E402

if TYPE_CHECKING:
    from db.catalog import Catalog


def _bare_decode(paths: list[str]) -> int:
    from PIL import Image

    for path in paths:
        with Image.open(path) as im:
            im.convert("RGB")  # the full-size RGB pixels a naive checker would start from
    return len(paths)


def _stage1(paths: list[str]) -> int:
    cfg = CleanConfig()
    worker = CleanWorker(
        cfg.max_pixels, cfg.measure_scale, cfg.fast_decode, tuple(cfg.formats), cfg.convert_icc
    )
    table = worker.process(pa.table({"image_id": paths, "path": paths}))
    bad = [r for r in table.to_pylist() if r["status"] != "ok"]
    assert not bad, bad[:1]
    return len(paths)


def _previous_commit(paths: list[str], workers: int, checkout: Path, cpu: bool = False) -> float:
    """The stage-1 worker of another checkout, timed by this file run with its PYTHONPATH:
    wall seconds on `workers` processes, or (cpu) CPU seconds in one process."""
    import os
    import subprocess

    with tempfile.NamedTemporaryFile("w", suffix=".txt") as listing:
        listing.write("\n".join(paths))
        listing.flush()
        env = {**os.environ, "PYTHONPATH": str(checkout)}
        mode = "--cpu-worker" if cpu else "--time-worker"
        done = subprocess.run(
            [sys.executable, __file__, mode, listing.name, "--workers", str(workers)],
            env=env, check=True, capture_output=True, text=True,
        )
    return float(done.stdout.strip().splitlines()[-1])


def _cpu_seconds(paths: list[str]) -> float:
    """CPU seconds of one process running the stage-1 worker over `paths` (after a warm-up):
    unlike wall time, barely moved by other jobs on a shared machine."""
    _stage1(paths[:5])
    start = time.process_time()
    _stage1(paths)
    return time.process_time() - start


def _measure_costs(paths: list[str]) -> dict[str, float]:
    """Milliseconds per image of each new measure, in one process (median over the pool)."""
    import cv2
    import numpy as np

    from curation.stage1.band import jpeg_top_band
    from curation.stage1.blockiness import blockiness
    from curation.stage1.clean import _detail_ratio, _laplacian_var
    from curation.stage1.noise import noise_sigma
    from curation.stage1.safe_decode import decode_for_measurement

    cv2.setNumThreads(1)
    cfg = CleanConfig()
    spent: dict[str, list[float]] = {k: [] for k in ("band", "noise", "blockiness", "detail")}
    for path in paths:
        data = Path(path).read_bytes()
        t0 = time.perf_counter()
        band = jpeg_top_band(data)
        t1 = time.perf_counter()
        noise_sigma(band)
        t2 = time.perf_counter()
        blockiness(band)
        t3 = time.perf_counter()
        rgb = decode_for_measurement(data, cfg.max_pixels, 4, True, set(cfg.formats)).rgb
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        lap = _laplacian_var(gray)
        t4 = time.perf_counter()
        _detail_ratio(gray, lap)
        t5 = time.perf_counter()
        for key, value in zip(spent, (t1 - t0, t2 - t1, t3 - t2, t5 - t4), strict=True):
            spent[key].append(value * 1e3)
    return {f"{k}_ms": round(float(np.median(v)), 3) for k, v in spent.items()}


def _pool_time(fn, paths: list[str], workers: int) -> float:
    chunks = [paths[i : i + 25] for i in range(0, len(paths), 25)]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        list(pool.map(fn, chunks[:workers]))  # start the processes and import modules first
        start = time.perf_counter()
        done = sum(pool.map(fn, chunks))
        elapsed = time.perf_counter() - start
    assert done == len(paths)
    return elapsed


@contextlib.contextmanager
def _ingested(paths: list[str], workers: int) -> Iterator[tuple[Path, Catalog]]:
    """A temp folder with a fresh catalog that has ingested `paths`."""
    from curation.ingest.scan import ingest
    from db.catalog import Catalog
    from db.migrate import migrate

    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "paths.txt"
        listing.write_text("\n".join(paths))
        cat = Catalog(Path(tmp) / "bench.duckdb")
        migrate(cat)
        ingest(cat, [listing], [".jpg"], "path", 0, workers, 256)
        yield Path(tmp), cat


def _end_to_end(paths: list[str], workers: int, shard_size: int) -> tuple[float, dict]:
    """Seconds of the clean job, and its outcomes with the shipped cuts counted by reason."""
    from collections import Counter

    from curation.stage1.clean import clean

    with _ingested(paths, workers) as (_, cat):
        start = time.perf_counter()
        stats, outcomes = clean(cat, CleanConfig(), 0, workers, shard_size)
        elapsed = time.perf_counter() - start
        assert stats.items == len(paths) and outcomes.num_rows == len(paths)
    reasons = Counter(
        r or "pass" for r in outcomes.column("reason").to_pylist()
    )
    return elapsed, dict(reasons)


def _command(paths: list[str], workers: int, shard_size: int) -> float:
    """Wall time of `hfaid clean` as a user runs it: a fresh interpreter, the CLI's imports,
    spawned workers, the outcome write and the summary."""
    import subprocess

    with _ingested(paths, workers) as (tmp, cat):
        config = tmp / "bench.toml"
        config.write_text(f"[runner]\nworkers = {workers}\nshard_size = {shard_size}\n")
        hfaid = Path(sys.executable).with_name("hfaid")
        start = time.perf_counter()
        subprocess.run(
            [str(hfaid), "clean", "--catalog", str(cat.path), "--config", str(config)],
            check=True,
            capture_output=True,
        )
        elapsed = time.perf_counter() - start
    return elapsed


def main() -> None:
    from hfaid_core.config import RunnerConfig

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=Path, default=Path("/work/bench-data/photos-2to4mp"))
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--shard-size", type=int, default=RunnerConfig().shard_size)
    parser.add_argument("--small", action="store_true", help="200 images, for a quick check")
    parser.add_argument("--previous", type=Path, default=Path("/work/wt-24-base"),
                        help="checkout of the previous commit (its stage-1 worker is timed)")
    parser.add_argument("--time-worker", type=Path, help=argparse.SUPPRESS)  # internal
    parser.add_argument("--cpu-worker", type=Path, help=argparse.SUPPRESS)  # internal
    parser.add_argument("--cpu-images", type=int, default=300,
                        help="images in each interleaved CPU-time comparison")
    args = parser.parse_args()
    if args.time_worker:  # run by _previous_commit under the other checkout's PYTHONPATH
        print(_pool_time(_stage1, args.time_worker.read_text().split("\n"), args.workers))
        return
    if args.cpu_worker:
        print(_cpu_seconds(args.cpu_worker.read_text().split("\n")))
        return
    count = 200 if args.small else args.count
    paths = [str(p) for p in build_photo_pool(args.pool, count)]
    for p in paths:  # page cache: both sides then measure decoding, not the disk
        Path(p).read_bytes()
    bare, previous, stage1, job, command, cpu_prev, cpu_new = [], [], [], [], [], [], []
    for _ in range(args.repeats):  # interleaved so drift on a shared machine hits all five
        sample = paths[: args.cpu_images]
        cpu_prev.append(_previous_commit(sample, 1, args.previous, cpu=True))
        cpu_new.append(_cpu_seconds(sample))
        bare.append(_pool_time(_bare_decode, paths, args.workers))
        previous.append(_previous_commit(paths, args.workers, args.previous))
        stage1.append(_pool_time(_stage1, paths, args.workers))
        seconds, outcomes = _end_to_end(paths, args.workers, args.shard_size)
        job.append(seconds)
        command.append(_command(paths, args.workers, args.shard_size))
    b, s, e2e = statistics.median(bare), statistics.median(stage1), statistics.median(job)
    cmd, prev = statistics.median(command), statistics.median(previous)
    report = {
        "images": count,
        "workers": args.workers,
        "megapixels_mean": round(_mean_megapixels(paths), 2),
        "bare_full_decode_s": round(b, 2),
        "bare_images_per_s": round(count / b, 1),
        "previous_commit_stage1_s": round(prev, 2),
        "previous_commit_images_per_s": round(count / prev, 1),
        "stage1_s": round(s, 2),
        "stage1_images_per_s": round(count / s, 1),
        "speedup_vs_bare_decode": round(b / s, 2),
        "time_vs_previous_commit": round(s / prev, 3),
        "cpu_ms_per_image_previous": round(1e3 * statistics.median(cpu_prev) / len(sample), 2),
        "cpu_ms_per_image": round(1e3 * statistics.median(cpu_new) / len(sample), 2),
        "cpu_vs_previous_commit": round(statistics.median(
            [n / p for n, p in zip(cpu_new, cpu_prev, strict=True)]), 3),
        "new_measures_ms_per_image": _measure_costs(paths[:200]),
        "outcomes_with_shipped_defaults": outcomes,
        "shard_size": args.shard_size,
        "hfaid_clean_job_s": round(e2e, 2),
        "hfaid_clean_images_per_s": round(count / e2e, 1),
        "job_speedup_vs_bare_decode": round(b / e2e, 2),
        "hfaid_clean_command_s": round(cmd, 2),
        "command_speedup_vs_bare_decode": round(b / cmd, 2),
        "runs_s": {
            "bare": _rounded(bare),
            "previous": _rounded(previous),
            "stage1": _rounded(stage1),
            "cpu_previous": _rounded(cpu_prev),
            "cpu": _rounded(cpu_new),
            "job": _rounded(job),
            "command": _rounded(command),
        },
    }
    print(json.dumps(report), flush=True)


def _rounded(values: list[float]) -> list[float]:
    return [round(v, 2) for v in values]


def _mean_megapixels(paths: list[str]) -> float:
    from PIL import Image

    sizes = []
    for p in paths:
        with Image.open(p) as im:
            sizes.append(im.width * im.height / 1e6)
    return statistics.mean(sizes)


if __name__ == "__main__":
    main()
