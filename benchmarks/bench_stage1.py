"""Stage 1 (decode check + measurements + pHash) vs a bare full PIL decode, side by side.

Run: .venv/bin/python benchmarks/bench_stage1.py [--small]
Both sides read the same 2-4 MP JPEGs from the page cache with the same number of spawned
processes; a third row times `hfaid clean`'s job end to end (runner + catalog merge + decide).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).parent))
from photo_pool import build_photo_pool  # noqa: E402

from curation.clean import CleanWorker  # noqa: E402
from curation.stage1_settings import CleanConfig  # noqa: E402


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


def _end_to_end(paths: list[str], workers: int) -> float:
    from curation.clean import clean
    from curation.ingest import ingest
    from db.catalog import Catalog
    from db.migrate import migrate

    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "paths.txt"
        listing.write_text("\n".join(paths))
        cat = Catalog(Path(tmp) / "bench.duckdb")
        migrate(cat)
        ingest(cat, [listing], [".jpg"], "path", 0, workers, 256)
        start = time.perf_counter()
        stats, outcomes = clean(cat, CleanConfig(), 0, workers, 128)
        elapsed = time.perf_counter() - start
        assert stats.items == len(paths) and outcomes.num_rows == len(paths)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=Path, default=Path("/work/bench-data/photos-2to4mp"))
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--small", action="store_true", help="200 images, for a quick check")
    args = parser.parse_args()
    count = 200 if args.small else args.count
    paths = [str(p) for p in build_photo_pool(args.pool, count)]
    for p in paths:  # page cache: both sides then measure decoding, not the disk
        Path(p).read_bytes()
    bare, stage1 = [], []
    for _ in range(args.repeats):  # interleaved so drift on a shared machine hits both
        bare.append(_pool_time(_bare_decode, paths, args.workers))
        stage1.append(_pool_time(_stage1, paths, args.workers))
    b, s = statistics.median(bare), statistics.median(stage1)
    report = {
        "images": count,
        "workers": args.workers,
        "megapixels_mean": round(_mean_megapixels(paths), 2),
        "bare_full_decode_s": round(b, 2),
        "bare_images_per_s": round(count / b, 1),
        "stage1_s": round(s, 2),
        "stage1_images_per_s": round(count / s, 1),
        "speedup_vs_bare_decode": round(b / s, 2),
    }
    print(json.dumps(report), flush=True)
    e2e = _end_to_end(paths, args.workers)
    report.update(
        {"hfaid_clean_job_s": round(e2e, 2), "hfaid_clean_images_per_s": round(count / e2e, 1)}
    )
    print(json.dumps(report), flush=True)


def _mean_megapixels(paths: list[str]) -> float:
    from PIL import Image

    sizes = []
    for p in paths:
        with Image.open(p) as im:
            sizes.append(im.width * im.height / 1e6)
    return statistics.mean(sizes)


if __name__ == "__main__":
    main()
