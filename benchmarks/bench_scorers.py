"""Scorers on CPU: the batched runner vs pyiqa's per-image call, and end-to-end vs model-only.

Usage: .venv/bin/python benchmarks/bench_scorers.py [--small] [--images N] [--metrics a,b]
       [--dtype bfloat16]

Both sides load the same random-weight checkpoint files (written here, in each model's real
file layout and real size; tiny models with --small) and score the same JPEGs; model build time
is excluded on both sides. The "runner" side is curation.scoring.job.ScoreWorker.process (DataLoader
decode workers, size buckets, each metric's declared batch size for the device unless --batch);
the "pyiqa" side is `pyiqa.create_metric(name, pretrained_model_path=...)` called on one file
path at a time, which is how pyiqa is used per image. `--dtype bfloat16` runs the runner and
model-only sides in bf16 (CPUs with bf16 hardware); pyiqa's side stays float32, its default.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import scipy.io
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curation.demo.photos import colour_photos  # noqa: E402
from curation.scoring.job import ScoreSettings, ScoreWorker  # noqa: E402
from curation.scoring.scorers import classical, pyiqa_models  # noqa: E402
from curation.scoring.scorers import random_weights as rw  # noqa: E402
from curation.scoring.scorers.compat import timm_without_download  # noqa: E402
from curation.scoring.scorers.inputs import load_for_policy  # noqa: E402
from curation.scoring.timing import shares  # noqa: E402

SIZES = [(512, 384), (384, 512), (640, 480)]


def make_pool(folder: Path, count: int, sizes: list[tuple[int, int]]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    photos = [Image.open(p).convert("RGB") for p in colour_photos()]
    paths = []
    for i in range(count):
        base = photos[i % len(photos)]
        w, h = base.size
        box = (i % 5 * 4, i % 3 * 4, w - i % 7 * 3, h - i % 4 * 3)
        img = base.crop(box).resize(sizes[i % len(sizes)], Image.Resampling.BICUBIC)
        path = folder / f"b_{i:04d}.jpg"
        img.save(path, quality=90)
        paths.append(path)
    return paths


def items_table(paths: list[Path], metric: str) -> pa.Table:
    sizes = [Image.open(p).size for p in paths]
    return pa.table(
        {
            "image_id": [p.name for p in paths],
            "path": [str(p) for p in paths],
            "width": [s[0] for s in sizes],
            "height": [s[1] for s in sizes],
            "exif_orientation": pa.array([1] * len(paths), pa.int64()),
            "missing": [[metric]] * len(paths),
        }
    )


def pyiqa_metric(metric: str, weights: Path, arch: dict, tmp: Path, device: str = "cpu"):
    import pyiqa

    if metric == "niqe":
        mu, cov = classical.niqe_params()
        mat = tmp / "niqe.mat"
        scipy.io.savemat(mat, {"mu_prisparam": mu.numpy()[None], "cov_prisparam": cov.numpy()})
        return pyiqa.create_metric("niqe", device=device, pretrained_model_path=str(mat))
    if metric == "musiq":
        return pyiqa.create_metric(
            "musiq",
            device=device,
            pretrained_model_path=str(weights / "musiq" / pyiqa_models.MUSIQ_FILE),
            **arch,
        )
    arch = dict(arch)
    backbone = arch.pop("backbone", {})
    with timm_without_download(**backbone):  # pyiqa's MANIQA asks timm for pretrained weights
        return pyiqa.create_metric(
            "maniqa",
            device=device,
            pretrained_model_path=str(weights / "maniqa" / pyiqa_models.MANIQA_FILE),
            **arch,
        )


def max_rel_diff(ours: pa.Table, paths: list[Path], theirs: list[float]) -> float:
    """Largest relative difference between the runner's rows and pyiqa's per-path scores."""
    ours_values = dict(zip(ours["image_id"].to_pylist(), ours["value"].to_pylist(), strict=True))
    return max(
        abs(ours_values[p.name] - v) / max(1e-9, abs(v)) for p, v in zip(paths, theirs, strict=True)
    )


def bench_metric(
    metric: str,
    paths: list[Path],
    weights: Path,
    arch: dict,
    batch: int,
    decode_workers: int,
    tmp: Path,
    rounds: int,
    dtype: str = "auto",
) -> dict:
    options = {metric: {"arch": arch}} if arch else {}
    settings = ScoreSettings(
        metrics=(metric,),
        device="cpu",
        weights_dir=str(weights),
        batch_size=batch,
        decode_workers=decode_workers,
        options=options,
        dtype=dtype,
    )
    worker = ScoreWorker(settings)
    table = items_table(paths, metric)
    worker.process(table.slice(0, 1))  # warm-up; starts the persistent decode workers
    worker.take_timings()
    scorer = worker.scorers[metric]
    batch = worker.batch_size(scorer)  # 0 = the metric's declared batch size on CPU
    # model-only: the same size-bucketed batches, decoded beforehand, straight into the scorer
    tensors = [load_for_policy(str(p), scorer.input_policy) for p in paths]
    by_shape: dict[tuple, list[torch.Tensor]] = {}
    for x in tensors:
        by_shape.setdefault(tuple(x.shape), []).append(x)
    batches = [
        torch.stack(v[i : i + batch]) for v in by_shape.values() for i in range(0, len(v), batch)
    ]
    metric_obj = pyiqa_metric(metric, weights, arch, tmp)
    metric_obj(str(paths[0]))  # warm-up

    times: dict[str, list[float]] = {"runner": [], "model": [], "pyiqa": []}
    # Interleaved rounds, best of each: the shared machine's load hits all three alike.
    for _ in range(rounds):
        t = time.perf_counter()
        ours = worker.process(table)
        times["runner"].append(time.perf_counter() - t)
        t = time.perf_counter()
        for b in batches:
            scorer.score(b)
        times["model"].append(time.perf_counter() - t)
        t = time.perf_counter()
        theirs = [float(metric_obj(str(p)).item()) for p in paths]
        times["pyiqa"].append(time.perf_counter() - t)
    runner_s, model_s, pyiqa_s = (min(times[k]) for k in ("runner", "model", "pyiqa"))
    # Where the runner's process spent its rounds (waiting for decoded images, the model, ...).
    split = {k: round(v, 3) for k, v in shares(worker.take_timings()).items()}

    diff = max_rel_diff(ours, paths, theirs)
    n = len(paths)
    return {
        "metric": metric,
        "images": n,
        "batch": batch,
        "dtype": str(scorer.dtype).removeprefix("torch."),
        "decode_workers": decode_workers,
        "rounds": rounds,
        "pyiqa_per_image_ips": n / pyiqa_s,
        "runner_ips": n / runner_s,
        "model_only_ips": n / model_s,
        "speedup_vs_pyiqa": pyiqa_s / runner_s,
        "e2e_over_model_only": model_s / runner_s,
        "max_rel_diff_vs_pyiqa": diff,
        "runner_time_split": split,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny models, few small images")
    parser.add_argument("--images", type=int, default=0)
    parser.add_argument("--metrics", default="niqe,musiq,maniqa")
    parser.add_argument("--batch", type=int, default=0, help="0 = each metric's CPU default")
    parser.add_argument("--decode-workers", type=int, default=ScoreSettings.decode_workers)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dtype", default="auto", help="runner precision; pyiqa stays float32")
    # Full-size MANIQA (ViT-B/8 on 20 crops of 224 px) takes ~40 s per image on 2 cores.
    parser.add_argument("--maniqa-images", type=int, default=2, help="images for maniqa")
    args = parser.parse_args()
    count = args.images or (8 if args.small else 24)
    sizes = [(320, 240), (240, 320)] if args.small else SIZES
    print(f"torch threads {torch.get_num_threads()}, images {count}, sizes {sizes}", flush=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        paths = make_pool(tmp / "pool", count, sizes)
        weights = tmp / "weights"
        results = []
        for metric in args.metrics.split(","):
            arch = rw.TINY_ARCH.get(metric, {}) if args.small else {}
            if metric == "musiq":
                rw.write_musiq(weights, arch)
            elif metric == "maniqa":
                rw.write_maniqa(weights, arch)
            chosen = paths if args.small or metric != "maniqa" else paths[: args.maniqa_images]
            row = bench_metric(
                metric,
                chosen,
                weights,
                arch,
                args.batch,
                args.decode_workers,
                tmp,
                args.rounds,
                args.dtype,
            )
            results.append(row)
            print(
                json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}),
                flush=True,
            )
    print(
        "\n| metric | runner dtype | images | batch | pyiqa per-image img/s | runner img/s "
        "| speed-up "
        "| model-only img/s | e2e / model-only | max rel diff |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['metric']} | {r['dtype']} | {r['images']} | {r['batch']} | "
            f"{r['pyiqa_per_image_ips']:.3g} | "
            f"{r['runner_ips']:.3g} | {r['speedup_vs_pyiqa']:.2f}x | {r['model_only_ips']:.3g} | "
            f"{r['e2e_over_model_only']:.2f} | {r['max_rel_diff_vs_pyiqa']:.1e} |"
        )


if __name__ == "__main__":
    main()
