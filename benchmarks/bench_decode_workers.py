"""CPU scoring with 0, 1 or 2 decode workers beside one model process, side by side.

Usage: .venv/bin/python benchmarks/bench_decode_workers.py [--metrics niqe,brisque]
       [--images 48] [--rounds 4] [--workers 0,1,2] [--sizes 512x384,1080x800]

The runner (`ScoreWorker.process`, one model process, its persistent decode workers, or none:
decoding in the model's process) on real-photo JPEGs; the worker counts alternate round by
round, best of --rounds. What `[score] decode_workers = auto` should be on CPU: the model's
forward uses every core through torch's threads, so decode workers compete with it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_scorers import items_table, make_pool  # noqa: E402
from curation.scoring.job import ScoreSettings, ScoreWorker  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", default="niqe,brisque")
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--workers", default="0,1,2")
    parser.add_argument("--sizes", default="512x384,1080x800")
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    print(f"{args.images} real-photo JPEGs per size, CPU with {os.cpu_count()} cores, best of "
          f"{args.rounds} interleaved rounds")
    print("| metric | size | " + " | ".join(f"{n} workers img/s" for n in counts)
          + f" | {counts[0]} / {counts[-1]} |")
    print("|---|---|" + "---|" * (len(counts) + 1))
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            width, height = (int(v) for v in size.split("x"))
            paths = make_pool(Path(tmp) / size, args.images, [(width, height)])
            for metric in args.metrics.split(","):
                table = items_table(paths, metric)
                runners = {n: ScoreWorker(ScoreSettings(metrics=(metric,), decode_workers=n))
                           for n in counts}  # fmt: skip
                for runner in runners.values():
                    runner.process(table.slice(0, 2))  # starts its decode workers
                best: dict[int, float] = {}
                for _ in range(args.rounds):
                    for n, runner in runners.items():
                        started = time.perf_counter()
                        runner.process(table)
                        rate = len(paths) / (time.perf_counter() - started)
                        best[n] = max(best.get(n, 0.0), rate)
                cells = " | ".join(f"{best[n]:.1f}" for n in counts)
                print(f"| {metric} | {size} | {cells} | "
                      f"{best[counts[0]] / best[counts[-1]]:.2f}x |", flush=True)
                del runners


if __name__ == "__main__":
    main()
