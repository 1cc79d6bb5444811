"""Decode workers' buffers sent by file descriptor (torch's default) vs by shared-memory name.

Usage: .venv/bin/python benchmarks/bench_buffer_sharing.py [--metrics niqe,brisque]
       [--images 48] [--rounds 3] [--workers 2] [--device cpu|cuda] [--size 512x384]

The scoring runner (`ScoreWorker.process`, its own decode workers) on real-photo JPEGs, side by
side in one run: rounds alternate between workers that share their batch buffers by file
descriptor (each piece received costs a round trip to a thread of the worker, which waits for
that worker's GIL while it decodes) and by name (`score.share_buffers_by_name`, what the runner
does). Reported per metric and way: the best round's images/s and how much of the model
process's time went to waiting for decoded images (`curation.scoring.timing`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import curation.scoring.job as score  # noqa: E402
from benchmarks.bench_scorers import items_table, make_pool  # noqa: E402
from curation.scoring.job import ScoreSettings, ScoreWorker  # noqa: E402
from curation.scoring.timing import DECODE_WAIT, TOTAL  # noqa: E402

BY_NAME = score.share_buffers_by_name
WAYS = {"by fd": None, "by name": BY_NAME}


def sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def worker_for(table, metric: str, way: str, workers: int, device: str) -> ScoreWorker:
    """A runner whose decode workers (started here) share their buffers `way`."""
    score.share_buffers_by_name = WAYS[way]  # read when the worker's DataLoader is made
    worker = ScoreWorker(ScoreSettings(metrics=(metric,), device=device, decode_workers=workers))
    worker.process(table.slice(0, 2))
    worker.take_timings()
    score.share_buffers_by_name = BY_NAME
    return worker


def measure(metric: str, paths: list[Path], args) -> dict[str, dict[str, float]]:
    table = items_table(paths, metric)
    workers = {way: worker_for(table, metric, way, args.workers, args.device) for way in WAYS}
    best: dict[str, dict[str, float]] = {}
    for _ in range(args.rounds):  # interleaved: the shared machine's load hits both alike
        for way, worker in workers.items():
            sync(args.device)
            started = time.perf_counter()
            worker.process(table)
            sync(args.device)
            seconds = time.perf_counter() - started
            timings = worker.take_timings()
            row = {"img_s": len(paths) / seconds, "wait": timings[DECODE_WAIT] / timings[TOTAL]}
            if way not in best or row["img_s"] > best[way]["img_s"]:
                best[way] = row
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", default="niqe,brisque")
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--size", default="512x384")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_pool(Path(tmp), args.images, [(width, height), (height, width)])
        print(f"{args.images} JPEGs of {args.size} and {height}x{width}, {args.workers} decode "
              f"workers, {args.device}, best of {args.rounds} interleaved rounds")
        print("| metric | by fd img/s | by name img/s | by name / by fd | waiting for decoded "
              "images, by fd | by name |")
        print("|---|---|---|---|---|---|")
        for metric in args.metrics.split(","):
            best = measure(metric, paths, args)
            fd, name = best["by fd"], best["by name"]
            print(f"| {metric} | {fd['img_s']:.1f} | {name['img_s']:.1f} | "
                  f"{name['img_s'] / fd['img_s']:.2f}x | {fd['wait']:.1%} | {name['wait']:.1%} |",
                  flush=True)


if __name__ == "__main__":
    main()
