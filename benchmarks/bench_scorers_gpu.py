"""Scorers on a GPU: images/s per metric at 1080x800, Q-Align batched vs batch 1, fp16 vs fp32.

Usage: .venv/bin/python benchmarks/bench_scorers_gpu.py --weights-dir DIR [--images 64]
       .venv/bin/python benchmarks/bench_scorers_gpu.py --random  (random weights, real sizes)

With --weights-dir the real checkpoints (`hfaid weights fetch all`) are used and the fp16/bf16
rows compare half precision with fp32 on pyiqa's five calibration images (the evidence for
`half_ok` in the scorer specs). With --random, MANIQA/MUSIQ/CLIP-IQA random weights at their
real sizes are written first (Q-Align needs the real 16 GB checkpoint and is skipped).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_scorers import make_pool  # noqa: E402
from curation.score import ScoreSettings, ScoreWorker  # noqa: E402
from curation.scorers import create_scorer  # noqa: E402
from curation.scorers import random_weights as rw  # noqa: E402
from curation.scorers.inputs import load_for_policy  # noqa: E402

METRICS = ["niqe", "brisque", "maniqa", "clipiqa", "clipiqa+", "musiq", "qalign_aesthetic"]


def throughput(
    metric: str, paths: list[Path], weights: str, batch: int, dtype: str | None
) -> float:
    from benchmarks.bench_scorers import items_table

    settings = ScoreSettings(
        metrics=(metric,),
        device="cuda",
        dtype=dtype,
        weights_dir=weights,
        batch_size=batch,
        decode_workers=8,
    )
    worker = ScoreWorker(settings)
    table = items_table(paths, metric)
    worker.process(table.slice(0, batch))
    torch.cuda.synchronize()
    t = time.perf_counter()
    worker.process(table)
    torch.cuda.synchronize()
    return len(paths) / (time.perf_counter() - t)


def half_vs_full(metric: str, weights: str) -> float:
    site = Path(importlib.util.find_spec("pyiqa").submodule_search_locations[0]).parent
    images = sorted((site / "ResultsCalibra" / "dist_dir").glob("*.bmp"))
    full = create_scorer(metric, device="cuda", dtype="float32", weights_dir=weights)
    half = create_scorer(metric, device="cuda", dtype="bfloat16", weights_dir=weights)
    x = torch.stack([load_for_policy(str(p), full.input_policy) for p in images])
    a, b = torch.tensor(full.score(x)), torch.tensor(half.score(x))
    return float(((a - b).abs() / (a.abs() + 1e-6)).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights-dir", default="")
    parser.add_argument("--random", action="store_true")
    parser.add_argument("--images", type=int, default=64)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("needs a CUDA device")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        paths = make_pool(tmp / "pool", args.images, [(1080, 800)])
        weights = args.weights_dir
        metrics = METRICS
        if args.random:
            weights = str(tmp / "w")
            rw.write_musiq(Path(weights))
            rw.write_maniqa(Path(weights))
            rw.write_clipiqa(Path(weights))
            rw.write_clipiqa(Path(weights), plus=True)
            metrics = [m for m in METRICS if not m.startswith("qalign")]
        rows = []
        for metric in metrics:
            row = {
                "metric": metric,
                "ips_batch16": throughput(metric, paths, weights, 16, None),
                "ips_batch1": throughput(metric, paths, weights, 1, None),
            }
            if not args.random and metric not in ("niqe", "brisque"):
                row["max_rel_diff_bf16_vs_fp32_calibration"] = half_vs_full(metric, weights)
            rows.append(row)
            print(json.dumps(row), flush=True)
        if "qalign_aesthetic" in metrics:
            q = next(r for r in rows if r["metric"] == "qalign_aesthetic")
            ratio = q["ips_batch16"] / q["ips_batch1"]
            print(f"Q-Align batched/batch-1: {ratio:.2f}x (goal >= 4x)")


if __name__ == "__main__":
    main()
