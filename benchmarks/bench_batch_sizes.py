"""The scoring runner at several batch settings on the same images: images/s side by side.

Usage: .venv/bin/python benchmarks/bench_batch_sizes.py [--metrics clipiqa]
       [--batch-sizes 0,1,8] [--device cpu] [--images 48] [--size 512x384] [--rounds 2]

Each setting is a `ScoreWorker` (decode workers as configured, real-size random weights)
scoring the same real-photo JPEGs of one size, settings alternating per round. A batch size
of 0 is the default: each metric its own declared batch for the device, also when metrics
share one decode. Two questions it answers:
- the CPU default per metric (`--metrics clipiqa --batch-sizes 1,8`);
- on a GPU, metrics that share a decode at their own batches vs all at the smallest one, the
  rule before (`--device cuda --metrics maniqa,clipiqa,niqe --batch-sizes 0,4`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_scorers import make_pool  # noqa: E402
from curation.scoring.job import ScoreSettings, ScoreWorker, path_items  # noqa: E402
from curation.scoring.scorers import random_weights as rw  # noqa: E402

WEIGHT_WRITERS = {
    "maniqa": lambda folder: rw.write_maniqa(folder),
    "clipiqa": lambda folder: rw.write_clipiqa(folder, real_size=True),
    "clipiqa+": lambda folder: rw.write_clipiqa(folder, plus=True, real_size=True),
    "musiq": lambda folder: rw.write_musiq(folder),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", default="clipiqa")
    parser.add_argument("--batch-sizes", default="0,1,8", help="0 = each metric's default")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--size", default="512x384", help="WxH")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    metrics = tuple(args.metrics.split(","))
    size = tuple(int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_pool(Path(tmp) / "pool", args.images, [size])
        weights = Path(tmp) / "weights"
        for metric in metrics:
            if metric in WEIGHT_WRITERS:
                WEIGHT_WRITERS[metric](weights)
        workers = {
            int(batch): ScoreWorker(
                ScoreSettings(metrics=metrics, device=args.device, weights_dir=str(weights),
                              batch_size=int(batch))
            )
            for batch in args.batch_sizes.split(",")
        }
        items = path_items(paths, metrics)
        for worker in workers.values():
            worker.process(items.slice(0, 1))  # warm-up: decode workers, first forward
        best: dict[int, float] = {}
        for _ in range(args.rounds):
            for batch, worker in workers.items():
                start = time.perf_counter()
                rows = worker.process(items)
                best[batch] = min(best.get(batch, 1e9), time.perf_counter() - start)
                assert all(s == "ok" for s in rows["status"].to_pylist()), "a row failed"
    device = next(iter(next(iter(workers.values())).scorers.values())).device
    print(f"{args.images} JPEGs {args.size}, {','.join(metrics)} on {device} (real-size random "
          f"weights), best of {args.rounds}")
    print("| batch setting | batch per metric | images/s | vs first |\n|---|---|---|---|")
    first = best[next(iter(workers))]
    for batch, worker in workers.items():
        sizes = ", ".join(f"{m} {worker.batch_size(s)}" for m, s in worker.scorers.items())
        label = "0 (defaults)" if batch == 0 else str(batch)
        print(f"| {label} | {sizes} | {args.images / best[batch]:.2f} | "
              f"{first / best[batch]:.2f}x |")


if __name__ == "__main__":
    main()
