"""NIQE on a pool where nearly every image has its own size: 96-px cells vs equal shapes only.

Usage: .venv/bin/python benchmarks/bench_niqe_cells.py [--images 256] [--shard 256]
       [--batch 16] [--device cpu] [--rounds 2]

Writes `--images` real-photo JPEGs of distinct sizes (sides 600-1000 px, to the pixel),
ingests them into a real catalog with `hfaid ingest`, and scores them with `ScoreWorker` in
shards, two ways, alternating per round:
- now: NIQE batches images whose sides round down to the same multiples of 96 (cropped, exact),
  over the pending list in 96-px cell order (`pending_scores(..., cell=96)`);
- before: the same NIQE registered with `batch_cell=1` (equal shapes only), over the pending
  list in shape order.
On CPU NIQE's default batch is 1 (batching does not pay there), so `--batch` sets it; the
comparison is meant for a GPU (`--device cuda`), where NIQE ran 3.9x faster at batch 16 than
at batch 1 on the H100.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from curation.sample_photos import colour_photos  # noqa: E402
from curation.score import ScoreSettings, ScoreWorker, metric_versions  # noqa: E402
from curation.scorers import Scorer, get_scorer_spec, register_scorer  # noqa: E402
from db.catalog import Catalog  # noqa: E402
from db.scoring import pending_scores  # noqa: E402

HFAID = [sys.executable, "-m", "curation.cli"]


def write_pool(folder: Path, count: int) -> None:
    """`count` JPEGs, each a crop of a bundled photograph resized to its own size."""
    folder.mkdir(parents=True)
    photos = [Image.open(p).convert("RGB") for p in colour_photos()]
    rng = random.Random(0)
    for i in range(count):
        size = (rng.randrange(600, 1000), rng.randrange(600, 1000))
        base = photos[i % len(photos)]
        w, h = base.size
        crop = base.crop((i % 5 * 4, i % 3 * 4, w - i % 7 * 3, h - i % 4 * 3))
        crop.resize(size, Image.Resampling.BICUBIC).save(folder / f"{i:05d}.jpg", quality=90)


FORWARD_SIZES: list[int] = []  # images per NIQE forward in the current run


def count_forwards() -> None:
    """Every scorer forward also records its batch size (a list append next to a forward)."""
    launch = Scorer.launch

    def counted(self: Scorer, batch):
        FORWARD_SIZES.append(batch.shape[0])
        return launch(self, batch)

    Scorer.launch = counted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--shard", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    register_scorer(dataclasses.replace(get_scorer_spec("niqe"), name="niqe_exact", batch_cell=1))
    with tempfile.TemporaryDirectory() as tmp:
        pool, catalog = Path(tmp) / "pool", Path(tmp) / "pool.duckdb"
        write_pool(pool, args.images)
        subprocess.run([*HFAID, "ingest", str(pool), "--catalog", str(catalog)], check=True,
                       capture_output=True, cwd=REPO)
        runs = {}
        for name, metric, cell in (("96-px cells (now)", "niqe", 96),
                                   ("equal shapes (before)", "niqe_exact", 1)):
            settings = ScoreSettings(metrics=(metric,), device=args.device,
                                     batch_size=args.batch)
            table = pending_scores(Catalog(catalog), None, metric_versions(settings), cell)
            worker = ScoreWorker(settings)
            worker.process(table.slice(0, 1))  # warm-up: decode workers, first forward
            runs[name] = (worker, table)
        count_forwards()
        best: dict[str, float] = {}
        fill: dict[str, float] = {}
        for _ in range(args.rounds):
            for name, (worker, table) in runs.items():
                FORWARD_SIZES.clear()
                start = time.perf_counter()
                for offset in range(0, table.num_rows, args.shard):
                    rows = worker.process(table.slice(offset, args.shard))
                    assert all(s == "ok" for s in rows["status"].to_pylist()), "a row failed"
                best[name] = min(best.get(name, 1e9), time.perf_counter() - start)
                fill[name] = sum(FORWARD_SIZES) / len(FORWARD_SIZES)
    print(f"NIQE on {args.images} JPEGs of distinct sizes (600-999 px sides), {args.device}, "
          f"batch {args.batch}, shards of {args.shard}, best of {args.rounds}")
    print("| batching | mean images per forward | images/s |\n|---|---|---|")
    for name in runs:
        print(f"| {name} | {fill[name]:.2f} | {args.images / best[name]:.2f} |")
    now, before = (best[name] for name in runs)
    print(f"cells / equal shapes: {before / now:.2f}x images/s")


if __name__ == "__main__":
    main()
