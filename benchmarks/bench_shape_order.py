"""Pending images in shape order vs content-hash order: batch fill and images/s on mixed sizes.

Usage: .venv/bin/python benchmarks/bench_shape_order.py [--images 128] [--shapes 16]
       [--shard 32] [--metric clipiqa] [--device cpu] [--batch 8] [--rounds 2]
       [--synthetic 1000000]

Only images of equal shape batch at full resolution, and a shard batches only within itself.
Part 1 (real): real-photo JPEGs in `--shapes` distinct sizes, ingested into a real catalog by
`hfaid ingest`; the pending list as `db.scoring.pending_scores` returns it (shapes together)
and the same rows in image_id order (the order before), cut into shards and fed to
`ScoreWorker.process` with the metric's full-size random weights at `--batch` (CLIP-IQA's GPU
batch; on CPU its default is 1, where batching does not pay), order alternating per round.
Part 2 (catalog only): synthetic catalogs of `--synthetic` pending images, a camera-like size
mix (half the images in 20 common sizes, the rest spread over 5000 others) and a long tail
(sides drawn to the pixel, nearly every size unique); `pending_scores`' time and the mean batch
of GPU shards (1024 images, batch 16) in image_id order, shape order and 96-px cell order
(what a job with NIQE asks for), for metrics that batch equal shapes and for NIQE, which
batches a 96-px cell (`ScorerSpec.batch_cell`).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import duckdb
import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_scorers import make_pool  # noqa: E402
from curation.scoring.job import ScoreSettings, ScoreWorker, metric_versions  # noqa: E402
from curation.scoring.scorers import random_weights as rw  # noqa: E402
from db.catalog import Catalog  # noqa: E402
from db.scoring import pending_scores  # noqa: E402

HFAID = [sys.executable, "-m", "hfaid.cli"]
COMMON_SIZES = [(4000, 3000), (6000, 4000), (1920, 1080), (4032, 3024), (2048, 1536),
                (3000, 2000), (1600, 1200), (5472, 3648), (2560, 1440), (1280, 720),
                (3840, 2160), (4608, 3456), (1024, 768), (2000, 1333), (6016, 4016),
                (800, 600), (5184, 3456), (3264, 2448), (2400, 1600), (1200, 800)]


def mixed_sizes(count: int) -> list[tuple[int, int]]:
    """`count` sizes, landscape and portrait, between 320 and 704 px on the long side."""
    sizes = []
    for i in range(count):
        long_side, short_side = 320 + 32 * (i % 13), 240 + 16 * (i % 7)
        sizes.append((long_side, short_side) if i % 3 else (short_side, long_side))
    return sizes


def mean_batch(table: pa.Table, shard: int, batch: int, cell: int = 1) -> float:
    """Images per batch when `table` is cut into shards and each shard into batches of images
    whose sides agree after rounding down to multiples of `cell` (1: equal shapes)."""
    batches = 0
    for start in range(0, table.num_rows, shard):
        part = table.slice(start, shard)
        keys = Counter(zip((h // cell for h in part["height"].to_pylist()),
                           (w // cell for w in part["width"].to_pylist()), strict=True))
        batches += sum(-(-count // batch) for count in keys.values())
    return table.num_rows / batches


def real_pool(args: argparse.Namespace, tmp: Path) -> None:
    catalog = tmp / "pool.duckdb"
    make_pool(tmp / "pool", args.images, mixed_sizes(args.shapes))
    subprocess.run([*HFAID, "ingest", str(tmp / "pool"), "--catalog", str(catalog)],
                   check=True, capture_output=True, cwd=REPO)
    weights = tmp / "weights"
    rw.write_clipiqa(weights, plus=args.metric == "clipiqa+", real_size=True)
    settings = ScoreSettings(metrics=(args.metric,), device=args.device,
                             weights_dir=str(weights), batch_size=args.batch)
    shape_order = pending_scores(Catalog(catalog), None, metric_versions(settings))
    orders = {"shape order (now)": shape_order, "image_id order (before)":
              shape_order.sort_by("image_id")}
    worker = ScoreWorker(settings)
    batch = worker.decode_batch_size(list(worker.scorers.values()))
    worker.process(shape_order.slice(0, 1))  # warm-up: decode workers, first forward
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, table in orders.items():
            start = time.perf_counter()
            for offset in range(0, table.num_rows, args.shard):
                rows = worker.process(table.slice(offset, args.shard))
                assert all(s == "ok" for s in rows["status"].to_pylist()), "a row failed"
            best[name] = min(best.get(name, 1e9), time.perf_counter() - start)
    print(f"Part 1: {args.images} JPEGs in {args.shapes} sizes, {args.metric} (full-size random "
          f"weights) on {args.device}, batch {batch}, shards of {args.shard}, best of "
          f"{args.rounds}")
    print("| order | mean images per batch | images/s |\n|---|---|---|")
    for name, table in orders.items():
        rate = table.num_rows / best[name]
        print(f"| {name} | {mean_batch(table, args.shard, batch):.2f} | {rate:.2f} |")
    now, before = (args.images / best[n] for n in orders)
    print(f"shape order / image_id order: {now / before:.2f}x images/s")


SIZE_MIXES = {
    # half in the 20 common sizes, half over 5000 others (100 widths x 50 heights)
    "camera mix": (
        "CASE WHEN u < 0.5 THEN c.w ELSE 1000 + (v * 100)::INT * 16 END",
        "CASE WHEN u < 0.5 THEN c.h ELSE 700 + (u * 100)::INT % 50 * 16 END",
    ),
    # sides drawn to the pixel: 800-3999 x 600-2999, nearly every size unique
    "long tail": ("800 + (v * 3200)::INT % 3200", "600 + (u * 2400)::INT % 2400"),
}


def synthetic_catalog(path: Path, n: int, mix: str) -> None:
    """n images with the given size mix, every one pending (no scores yet)."""
    subprocess.run([*HFAID, "init", "--catalog", str(path)], check=True, capture_output=True,
                   cwd=REPO)
    con = duckdb.connect(str(path))
    con.execute("SELECT setseed(0.42)")
    common = ", ".join(f"({w}, {h})" for w, h in COMMON_SIZES)
    con.execute(f"CREATE TEMP TABLE common(w INT, h INT); INSERT INTO common VALUES {common}")
    con.execute(f"""
        CREATE TEMP TABLE pick AS
        SELECT i, printf('%064x', hash(i)) AS image_id, random() AS u, random() AS v
        FROM range({n}) t(i)
    """)
    width, height = SIZE_MIXES[mix]
    con.execute(f"""
        INSERT INTO images (image_id, bytes, format, width, height, mode)
        SELECT image_id, 2000000, 'JPEG', {width}, {height}, 'RGB'
        FROM pick JOIN (SELECT row_number() OVER () - 1 AS k, w, h FROM common) c
          ON c.k = (v * {len(COMMON_SIZES)})::INT % {len(COMMON_SIZES)}
    """)
    con.execute("""
        INSERT INTO paths (path, image_id, source, size, mtime)
        SELECT printf('/pool/%08d.jpg', i), image_id, 'pool', 2000000, 0 FROM pick
    """)
    con.close()


def synthetic(n: int, tmp: Path) -> None:
    print(f"\nPart 2: synthetic catalogs of {n:,} pending images; GPU shards of 1024, batch 16")
    print("| size mix | sizes | order | pending_scores s | mean batch, equal shapes | "
          "mean batch, NIQE (96-px cells) |\n|---|---|---|---|---|---|")
    for mix in SIZE_MIXES:
        path = tmp / f"{mix.replace(' ', '_')}.duckdb"
        synthetic_catalog(path, n, mix)
        versions = {"niqe": "synthetic-1"}
        orders, seconds = {}, {}
        for _ in range(2):  # interleaved, best of 2
            for name, cell in (("shape order", 1), ("96-px cell order (now)", 96)):
                start = time.perf_counter()
                orders[name] = pending_scores(Catalog(path), None, versions, cell)
                took = time.perf_counter() - start
                seconds[name] = min(seconds.get(name, 1e9), took)
        orders["image_id order"] = orders["shape order"].sort_by("image_id")
        table = orders["shape order"]
        sizes = len(set(zip(table["width"].to_pylist(), table["height"].to_pylist(),
                            strict=True)))
        for name in ("image_id order", "shape order", "96-px cell order (now)"):
            took = f"{seconds[name]:.2f}" if name in seconds else ""
            print(f"| {mix} | {sizes:,} | {name} | {took} | "
                  f"{mean_batch(orders[name], 1024, 16):.2f} | "
                  f"{mean_batch(orders[name], 1024, 16, 96):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=128, help="0 skips part 1")
    parser.add_argument("--shapes", type=int, default=16)
    parser.add_argument("--shard", type=int, default=32)
    parser.add_argument("--metric", default="clipiqa", choices=["clipiqa", "clipiqa+"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--synthetic", type=int, default=1_000_000, help="0 skips part 2")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.images:
            real_pool(args, Path(tmp))
        if args.synthetic:
            synthetic(args.synthetic, Path(tmp))


if __name__ == "__main__":
    main()
