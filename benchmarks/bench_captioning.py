"""Captioning throughput: images/s per batch size, end-to-end vs generate-only, on CPU and GPU.

    .venv/bin/python benchmarks/bench_captioning.py [--small] [--gpu-only | --cpu-only]

CPU: the tiny random Florence-2 (transformers' test shape) on real photos; reports images/s
end-to-end (decode + preprocess + generate + checks, as the caption worker runs a shard) and
the share of that time spent outside `generate`. GPU (when CUDA is present): a
Florence-2-large-shaped model with random weights, batch 1 vs larger batches, and end-to-end
vs generate-only images/s (goal: ratio >= 0.9, i.e. decoding hides behind generation).
Random weights rarely emit an end token, so every caption runs to max_new_tokens: a fixed,
comparable amount of work per image.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from captioning.captioner import GenerationSettings, load_rgb  # noqa: E402
from captioning.checks import CheckSettings  # noqa: E402
from captioning.job import CaptionSpec, CaptionWorker  # noqa: E402
from captioning.models import ModelRef  # noqa: E402
from captioning.tiny_model import build_random_florence2  # noqa: E402
from tests.conftest import write_photo_pool  # noqa: E402


def _spec(folder: Path, device: str, dtype: str, batch: int, gen: GenerationSettings):
    return CaptionSpec(model=ModelRef(name=folder.name, folder=folder), fingerprint="bench",
                       task="<MORE_DETAILED_CAPTION>", device=device, dtype=dtype,
                       batch_size=batch, generation=gen, checks=CheckSettings())


def measure(worker: CaptionWorker, paths: list[Path], reps: int = 2) -> dict[str, float]:
    """End-to-end images/s of one shard, and generate-only images/s on prepared batches.

    The two alternate `reps` times and the best of each is kept: a shared machine's noise
    only ever slows a pass down.
    """
    items = pa.table({"image_id": [p.stem for p in paths], "path": [str(p) for p in paths]})
    captioner = worker.captioner
    size = worker.spec.batch_size
    worker.process(items.slice(0, size))  # warm-up: kernels, allocator
    prepared = []
    for i in range(0, len(paths), size):
        images = [load_rgb(str(p)) for p in paths[i : i + size]]
        prepared.append((captioner.prepare(images), [im.size for im in images]))
    best_e2e, best_in_generate, best_gen_only = float("inf"), 0.0, float("inf")
    for _ in range(reps):
        captioner.generate_seconds = 0.0
        started = time.perf_counter()
        out = worker.process(items)
        e2e = time.perf_counter() - started
        assert out.num_rows == len(paths) and out.column("caption").null_count == 0
        if e2e < best_e2e:
            best_e2e, best_in_generate = e2e, captioner.generate_seconds
        captioner.generate_seconds = 0.0
        for inputs, sizes in prepared:  # generate-only: decoding and preprocessing done
            captioner.generate(inputs, sizes)
        best_gen_only = min(best_gen_only, captioner.generate_seconds)
    return {
        "batch": size, "images": len(paths),
        "e2e_img_s": len(paths) / best_e2e, "generate_only_img_s": len(paths) / best_gen_only,
        "share_outside_generate": 1 - best_in_generate / best_e2e,
        "e2e_over_generate_only": best_gen_only / best_e2e,
    }


def run(folder: Path, paths: list[Path], device: str, dtype: str, batches: list[int],
        gen: GenerationSettings, per_batch: int = 0, reps: int = 2) -> list[dict]:
    """One row per batch size; per_batch > 0 times batch x per_batch images (at least 8), so
    slow small batches do not take the whole time budget."""
    rows = []
    worker = None
    for batch in batches:
        spec = _spec(folder, device, dtype, batch, gen)
        if worker is None:
            worker = CaptionWorker(spec)
        else:  # reuse the loaded model; only the batch size changes
            worker.spec = spec
        try:
            subset = paths[: max(8, batch * per_batch)] if per_batch else paths
            rows.append({"device": device, **measure(worker, subset, reps)})
        except RuntimeError as exc:  # out of memory at a large batch ends the sweep
            print(f"batch {batch}: {str(exc).splitlines()[0]}", file=sys.stderr)
            break
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="fewer images (CI smoke run)")
    parser.add_argument("--cpu-only", action="store_true")
    parser.add_argument("--gpu-only", action="store_true")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1: OpenMP spin-waits wreck timings on a "
                             "shared, oversubscribed machine)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)

    work = Path(tempfile.mkdtemp(prefix="bench-caption-"))
    results = []
    if not args.gpu_only:
        count = 12 if args.small else 48
        paths = write_photo_pool(work / "cpu", count, size=(640, 480))
        tiny = build_random_florence2(work / "tiny")
        gen = GenerationSettings(num_beams=1, max_new_tokens=16 if args.small else 32)
        results += run(tiny, paths, "cpu", "float32", [1, 4, 12], gen)
    if not args.cpu_only and torch.cuda.is_available():
        batches = [1, 8] if args.small else [1, 8, 16, 32]
        paths = write_photo_pool(work / "gpu", 4 * batches[-1], size=(1600, 1200), quality=92)
        large = build_random_florence2(work / "large", shape="large")
        # Florence-2's 3 beams; 128 new tokens, about a real detailed caption's length (random
        # weights never stop early, so every image costs the full 128 steps).
        gen = GenerationSettings(num_beams=3, max_new_tokens=128)
        results += run(large, paths, "cuda", "auto", batches, gen, per_batch=4, reps=1)
    elif not args.cpu_only:
        print("no CUDA device: GPU rows not measured", file=sys.stderr)
    print("\n| device | batch | images | end-to-end img/s | generate-only img/s | "
          "outside generate | e2e / generate-only |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['device']} | {r['batch']} | {r['images']} | {r['e2e_img_s']:.2f} | "
              f"{r['generate_only_img_s']:.2f} | {r['share_outside_generate']:.0%} | "
              f"{r['e2e_over_generate_only']:.2f} |")


if __name__ == "__main__":
    main()
