"""Ingest throughput vs the floor of reading + sha256-hashing the same bytes, side by side."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from blake3 import blake3

sys.path.insert(0, str(Path(__file__).parent))
from photo_pool import build_photo_pool  # noqa: E402


def _sha256_file(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def _blake3_file(path: str) -> str:
    with open(path, "rb") as fh:
        return blake3(fh.read(), max_threads=1).hexdigest()


def python_floor(paths: list[str], workers: int, hasher=_sha256_file) -> float:
    """Read + hash every file with `workers` processes: the floor ingest is compared with."""
    started = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(hasher, paths, chunksize=64))
    return time.perf_counter() - started


def sha256sum_floor(folder: Path, workers: int) -> float:
    started = time.perf_counter()
    subprocess.run(
        f"find {folder} -name '*.jpg' -print0 | xargs -0 -P {workers} -n 256 sha256sum > /dev/null",
        shell=True,
        check=True,
    )
    return time.perf_counter() - started


def hfaid_ingest(folder: Path, workers: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "hfaid.cli",
                "ingest",
                str(folder),
                "--catalog",
                f"{tmp}/bench.duckdb",
                "--workers",
                str(workers),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pool", type=Path, default=Path("/work/bench-data/photos-2to4mp"))
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--copies",
        type=int,
        default=4,
        help="hard-linked copies of the pool (every path is read and hashed; fixed start-up "
        "costs amortise as they would over a large pool)",
    )
    args = parser.parse_args()
    originals = build_photo_pool(args.pool, args.count)
    folder = Path(tempfile.mkdtemp(dir=args.pool.parent, prefix="ingest-bench-"))
    paths = []
    for copy in range(args.copies):
        (folder / f"copy{copy}").mkdir()
        for original in originals:  # hard links: same bytes, no extra disk, distinct paths
            link = folder / f"copy{copy}" / original.name
            os.link(original, link)
            paths.append(str(link))
    total_bytes = sum(os.path.getsize(p) for p in paths)
    python_floor(paths, args.workers)  # warm the page cache: every run reads from memory
    results: dict[str, list[float]] = {
        "sha256 floor (python)": [],
        "blake3 read+hash": [],
        "sha256sum (coreutils)": [],
        "hfaid ingest": [],
    }
    for _ in range(args.repeats):  # interleaved, so background load hits every contender alike
        results["sha256 floor (python)"].append(python_floor(paths, args.workers))
        results["blake3 read+hash"].append(python_floor(paths, args.workers, _blake3_file))
        results["sha256sum (coreutils)"].append(sha256sum_floor(folder, args.workers))
        results["hfaid ingest"].append(hfaid_ingest(folder, args.workers))
    shutil.rmtree(folder)
    medians = {k: statistics.median(v) for k, v in results.items()}
    floor = medians["sha256 floor (python)"]
    print(
        f"{len(paths)} JPEG paths ({args.count} distinct photos x {args.copies} hard-linked "
        f"copies), {total_bytes / 1e9:.2f} GB, {args.workers} processes, "
        f"median of {args.repeats}"
    )
    print(f"{'contender':26s} {'seconds':>8s} {'images/s':>9s} {'MB/s':>7s} {'vs floor':>9s}")
    for name, seconds in medians.items():
        print(
            f"{name:26s} {seconds:8.2f} {len(paths) / seconds:9.0f} "
            f"{total_bytes / 1e6 / seconds:7.0f} {floor / seconds:8.2f}x"
        )
    print(json.dumps({"images": len(paths), "bytes": total_bytes, "median_s": medians}))


if __name__ == "__main__":
    main()
