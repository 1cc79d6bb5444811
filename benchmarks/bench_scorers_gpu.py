"""Scorers on a GPU: runner vs pyiqa, end-to-end vs model-only, images/s, Q-Align batching.

Usage: python benchmarks/bench_scorers_gpu.py --random [--images 512] [--json FILE]
       python benchmarks/bench_scorers_gpu.py --weights-dir DIR   (real checkpoints)

All images are 1080x800 real-photo JPEGs (the size pyiqa's published timings use).
1. runner vs pyiqa per-image (niqe, musiq, maniqa; fp32 on both sides, same weights files):
   `ScoreWorker.process` (DataLoader decode workers, size buckets, batch 16) against
   `pyiqa.create_metric(...)` called on one path at a time; and the runner against the same
   batches decoded beforehand and fed straight to the model ("model-only"), on the first
   --pyiqa-images images.
2. images/s per metric at the default precision (bf16 where `half_ok`), batch 16 vs batch 1,
   over --images images fed to the runner in shards of 256 as a scoring job does.
3. Q-Align batched vs batch 1, and GPU-hours for a 1M pool through the default funnel.
With --random, MUSIQ, MANIQA and CLIP-IQA(+) get random weights at their real sizes in their
real file layouts, and Q-Align the real one-align architecture (LLaMA-2-7B + ViT-L/14) with
random weights built on the GPU. With --weights-dir, a bf16-vs-fp32 column on pyiqa's
calibration images is added (the evidence for `half_ok`).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_scorers import (  # noqa: E402
    items_table,
    make_pool,
    max_rel_diff,
    pyiqa_metric,
)
from curation.scoring.job import ScoreSettings, ScoreWorker  # noqa: E402
from curation.scoring.scorers import create_scorer  # noqa: E402
from curation.scoring.scorers import random_weights as rw  # noqa: E402
from curation.scoring.scorers.inputs import load_for_policy  # noqa: E402
from curation.scoring.timing import shares  # noqa: E402
from hfaid_core.settings.score import ScoreConfig  # noqa: E402

METRICS = ["qalign_aesthetic", "niqe", "brisque", "maniqa", "clipiqa", "clipiqa+", "musiq"]
AGAINST_PYIQA = ["niqe", "musiq", "maniqa"]
# The default funnel at 1M images (selection benchmark): 720k reach stage 2 after stage 1 and
# dedup, 78k reach stage 3 (Q-Align) after the quality thresholds.
STAGE2_IMAGES, STAGE3_IMAGES = 720_000, 78_000
STAGE2_METRICS = ["maniqa", "clipiqa", "niqe"]
DECODE_WORKERS = 8
SHARD = ScoreConfig().gpu_shard_size  # what `hfaid score` uses on a GPU (--shard overrides)
DEVICE = "cuda"  # --device cpu: a smoke run of this script on a machine without a GPU


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def synced(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of fn(), with the device's queued work inside the timing."""
    sync()
    started = time.perf_counter()
    result = fn()
    sync()
    return time.perf_counter() - started, result


def worker_for(metric: str, weights: str, batch: int, dtype: str | None) -> ScoreWorker:
    settings = ScoreSettings(
        metrics=(metric,),
        device=DEVICE,
        dtype=dtype,
        weights_dir=weights,
        batch_size=batch,
        decode_workers=DECODE_WORKERS,
    )
    return ScoreWorker(settings)


def by_shards(worker: ScoreWorker, table, shard: int) -> list[dict]:
    """The pool as the runner feeds it: one `process` call per shard."""
    rows: list[dict] = []
    for offset in range(0, table.num_rows, shard):
        rows += worker.process(table.slice(offset, shard)).to_pylist()
    return rows


def throughput(
    metric: str, paths: list[Path], weights: str, batch: int, dtype: str | None, shard: int = 0
):
    worker = worker_for(metric, weights, batch, dtype)
    table = items_table(paths, metric)
    worker.process(table.slice(0, batch))  # warm-up: kernels, allocator, decode workers
    worker.take_timings()
    seconds, rows = synced(lambda: by_shards(worker, table, shard or SHARD))
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:  # the runner records per-image errors; a timing of failures means nothing
        raise RuntimeError(f"{metric}: {len(failed)} images failed, e.g. {failed[0]['detail']}")
    # Where the model's process spent the run: waiting for decoded images means the decode
    # workers, not the model, set the speed (the fast metrics' e2e / model-only gap).
    parts = ", ".join(f"{k} {v:.0%}" for k, v in shares(worker.take_timings()).items())
    print(f"  {metric} batch {batch}, shards of {shard or SHARD}: {parts}", flush=True)
    return len(paths) / seconds


_DECODED: dict[tuple, list[torch.Tensor]] = {}


def stacked_batches(tensors: list[torch.Tensor], batch: int) -> list[torch.Tensor]:
    """Pre-decoded batches, page-locked on a GPU run as the runner's decode pieces are."""
    batches = [torch.stack(tensors[i : i + batch]) for i in range(0, len(tensors), batch)]
    return [b.pin_memory() for b in batches] if DEVICE == "cuda" else batches


def model_pass(scorer, batches: list[torch.Tensor]) -> list[float]:
    """The scorer alone, pipelined like the runner: each batch is read after the next launches."""
    values: list[float] = []
    previous = None
    for batch in batches:
        output = scorer.launch(batch)
        if previous is not None:
            values += scorer.read(previous)
        previous = output
    return values + scorer.read(previous)


def model_only(metric: str, paths: list[Path], weights: str, batch: int, dtype: str | None):
    """images/s of the scorer alone on batches decoded beforehand (H2D copy included)."""
    scorer = worker_for(metric, weights, batch, dtype).scorers[metric]
    key = (scorer.input_policy, len(paths))
    if key not in _DECODED:
        _DECODED[key] = [load_for_policy(str(p), scorer.input_policy) for p in paths]
    batches = stacked_batches(_DECODED[key], batch)
    scorer.score(batches[0])
    return len(paths) / synced(lambda: model_pass(scorer, batches))[0]


def measure_metric(
    metric: str, paths: list[Path], weights: str, other_shard: int, batch1: bool
) -> dict[str, float]:
    row = {
        "ips_batch16": throughput(metric, paths, weights, 16, None),
        "model_only_batch16": model_only(metric, paths, weights, 16, None),
    }
    if other_shard:  # the same pool in shards of another size, for a side-by-side ratio
        row[f"ips_batch16_shard{other_shard}"] = throughput(
            metric, paths, weights, 16, None, other_shard
        )
    if batch1:
        row["ips_batch1"] = throughput(metric, paths, weights, 1, None)
        row["model_only_batch1"] = model_only(metric, paths, weights, 1, None)
    return row


def against_pyiqa(metric: str, paths: list[Path], weights: Path, tmp: Path, rounds: int):
    """Goal 1 (runner / pyiqa per-image) and goal 2 (end-to-end / model-only), fp32 both."""
    batch = 16
    worker = worker_for(metric, str(weights), batch, "float32")
    table = items_table(paths, metric)
    worker.process(table.slice(0, batch))
    scorer = worker.scorers[metric]
    tensors = [load_for_policy(str(p), scorer.input_policy) for p in paths]
    batches = stacked_batches(tensors, batch)
    theirs_metric = pyiqa_metric(metric, weights, {}, tmp, device=DEVICE)
    theirs_metric(str(paths[0]))
    best = {"runner": float("inf"), "model": float("inf"), "pyiqa": float("inf")}
    for _ in range(rounds):  # interleaved, best of each
        seconds, ours = synced(lambda: worker.process(table))
        best["runner"] = min(best["runner"], seconds)
        seconds, _ = synced(lambda: model_pass(scorer, batches))
        best["model"] = min(best["model"], seconds)
        seconds, theirs = synced(lambda: [float(theirs_metric(str(p)).item()) for p in paths])
        best["pyiqa"] = min(best["pyiqa"], seconds)
    diff = max_rel_diff(ours, paths, theirs)
    n = len(paths)
    return {
        "metric": metric,
        "pyiqa_per_image_ips": n / best["pyiqa"],
        "runner_ips": n / best["runner"],
        "model_only_ips": n / best["model"],
        "runner_over_pyiqa": best["pyiqa"] / best["runner"],
        "e2e_over_model_only": best["model"] / best["runner"],
        "max_rel_diff_vs_pyiqa": diff,
    }


def release() -> None:
    if DEVICE == "cuda":
        torch.cuda.empty_cache()


def half_vs_full(metric: str, weights: str) -> float:
    site = Path(importlib.util.find_spec("pyiqa").submodule_search_locations[0]).parent
    images = sorted((site / "ResultsCalibra" / "dist_dir").glob("*.bmp"))
    full = create_scorer(metric, device=DEVICE, dtype="float32", weights_dir=weights)
    half = create_scorer(metric, device=DEVICE, dtype="bfloat16", weights_dir=weights)
    x = torch.stack([load_for_policy(str(p), full.input_policy) for p in images])
    a, b = torch.tensor(full.score(x)), torch.tensor(half.score(x))
    return float(((a - b).abs() / (a.abs() + 1e-6)).max())


def random_weights(folder: Path, metrics: list[str]) -> None:
    writers = {
        "musiq": lambda: rw.write_musiq(folder),
        "maniqa": lambda: rw.write_maniqa(folder),
        "clipiqa": lambda: rw.write_clipiqa(folder, real_size=True),
        "clipiqa+": lambda: rw.write_clipiqa(folder, plus=True, real_size=True),
        # bf16: what compute_dtype picks for Q-Align on a bf16-capable GPU by default.
        "qalign_aesthetic": lambda: rw.adopt_full_size_qalign(
            folder, torch.device(DEVICE), torch.bfloat16
        ),
    }
    for metric in metrics:
        if metric in writers:
            writers[metric]()


def gpu_hours(rows: dict[str, dict]) -> dict[str, float]:
    stage2 = sum(STAGE2_IMAGES / rows[m]["ips_batch16"] for m in STAGE2_METRICS) / 3600
    stage3 = STAGE3_IMAGES / rows["qalign_aesthetic"]["ips_batch16"] / 3600
    return {"stage2_h": stage2, "stage3_h": stage3, "total_h": stage2 + stage3}


def main() -> None:
    global DEVICE, SHARD
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights-dir", default="")
    parser.add_argument("--random", action="store_true")
    parser.add_argument("--images", type=int, default=1024, help="pool for images/s")
    parser.add_argument("--shard", type=int, default=SHARD, help="images per runner shard")
    parser.add_argument("--other-shard", type=int, default=0, help="also time this shard size")
    parser.add_argument("--no-batch1", action="store_true", help="skip the batch-1 columns")
    parser.add_argument("--pyiqa-images", type=int, default=128, help="vs pyiqa pool; 0: skip")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--metrics", default=",".join(METRICS))
    parser.add_argument("--json", default="", help="also write every row to this file")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    args = parser.parse_args()
    DEVICE, SHARD = args.device, args.shard
    if DEVICE == "cuda" and not torch.cuda.is_available():
        sys.exit("needs a CUDA device (or --device cpu for a smoke run)")
    if not args.random and not args.weights_dir:
        sys.exit("pass --weights-dir DIR (real checkpoints) or --random")
    metrics = args.metrics.split(",")
    name = torch.cuda.get_device_name() if DEVICE == "cuda" else "CPU"
    report: dict[str, object] = {
        "device": name,
        "images": args.images,
        "pyiqa_images": args.pyiqa_images,
    }
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        paths = make_pool(tmp / "pool", args.images, [(1080, 800)])
        weights = Path(args.weights_dir or tmp / "w")
        if args.random:
            started = time.perf_counter()
            random_weights(weights, metrics)
            print(f"random weights written/built in {time.perf_counter() - started:.0f} s")
        compared = []
        against = [m for m in AGAINST_PYIQA if m in metrics] if args.pyiqa_images > 0 else []
        for metric in against:
            compared.append(
                against_pyiqa(metric, paths[: args.pyiqa_images], weights, tmp, args.rounds)
            )
            print(json.dumps(compared[-1]), flush=True)
            release()
        report["against_pyiqa"] = compared
        rows: dict[str, dict] = {}
        for metric in metrics:
            try:
                row = measure_metric(
                    metric, paths, str(weights), args.other_shard, not args.no_batch1
                )
            except RuntimeError as exc:
                print(f"{metric}: not measured: {exc}", flush=True)
                continue
            if not args.random and metric not in ("niqe", "brisque"):
                row["max_rel_diff_bf16_vs_fp32_calibration"] = half_vs_full(metric, str(weights))
            rows[metric] = row
            print(json.dumps({"metric": metric, **row}), flush=True)
            release()
        report["throughput"] = rows
        if "ips_batch1" in rows.get("qalign_aesthetic", {}):
            q = rows["qalign_aesthetic"]
            report["qalign_batched_over_batch1"] = q["ips_batch16"] / q["ips_batch1"]
            report["qalign_model_only_batched_over_batch1"] = (
                q["model_only_batch16"] / q["model_only_batch1"]
            )
        if set(STAGE2_METRICS + ["qalign_aesthetic"]) <= set(rows):
            report["gpu_hours_1m"] = gpu_hours(rows)
    print_tables(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


def print_tables(report: dict) -> None:
    print(f"\n{report['device']}, 1080x800 images: {report['pyiqa_images']} against pyiqa, "
          f"{report['images']} in shards of {SHARD} for images/s\n")
    print("| metric | pyiqa per-image img/s | runner img/s | runner / pyiqa | model-only img/s "
          "| e2e / model-only | max rel diff |")
    print("|---|---|---|---|---|---|---|")
    for r in report["against_pyiqa"]:
        print(f"| {r['metric']} | {r['pyiqa_per_image_ips']:.1f} | {r['runner_ips']:.1f} | "
              f"{r['runner_over_pyiqa']:.2f}x | {r['model_only_ips']:.1f} | "
              f"{r['e2e_over_model_only']:.2f} | {r['max_rel_diff_vs_pyiqa']:.1e} |")
    print("\nDefault precision (bf16 where half_ok); nan = not measured:\n")
    print("| metric | runner batch 16 img/s | runner batch 1 img/s | batched / batch 1 "
          "| model-only batch 16 | model-only batch 1 | e2e / model-only (batch 16) "
          "| other shard size: img/s, e2e / model-only |")
    print("|---|---|---|---|---|---|---|---|")
    nan = float("nan")
    for metric, r in report["throughput"].items():
        one, model_one = r.get("ips_batch1", nan), r.get("model_only_batch1", nan)
        other = [(k, v) for k, v in r.items() if k.startswith("ips_batch16_shard")]
        other_text = ", ".join(
            f"{k.removeprefix('ips_batch16_')}: {v:.1f}, {v / r['model_only_batch16']:.2f}"
            for k, v in other
        )
        print(f"| {metric} | {r['ips_batch16']:.1f} | {one:.1f} | "
              f"{r['ips_batch16'] / one:.2f}x | {r['model_only_batch16']:.1f} | "
              f"{model_one:.1f} | {r['ips_batch16'] / r['model_only_batch16']:.2f} | "
              f"{other_text} |")
    if "qalign_batched_over_batch1" in report:
        print(f"\nQ-Align batched / batch 1: {report['qalign_batched_over_batch1']:.2f}x end to "
              f"end, {report['qalign_model_only_batched_over_batch1']:.2f}x model-only "
              "(goal >= 4x)")
    if "gpu_hours_1m" in report:
        h = report["gpu_hours_1m"]
        print(f"1M pool, default funnel: stage 2 {h['stage2_h']:.1f} h + stage 3 "
              f"{h['stage3_h']:.1f} h = {h['total_h']:.1f} GPU-hours on this device")


if __name__ == "__main__":
    main()
