"""Fine-tuning step time: real shards + on-the-fly degradation vs in-memory batches.

    .venv/bin/python benchmarks/bench_finetune.py [--small]

Both modes run the same training step (training.train_ropo.compute_loss + AdamW) on the same
tiny random-weight SD (training/tiny_sd.py), interleaved in rounds so machine load hits both.
"shards" pulls each batch from build_dataloader (WebDataset, resampled; JPEG decode, resize +
centre crop, Real-ESRGAN degradation for the 20% negatives, tokenization) with worker processes;
"memory" cycles through batches built beforehand. Goal: shards / memory <= 1.1.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from curation.demo.photos import colour_photos  # noqa: E402
from training.checks import find_shards  # noqa: E402
from training.tiny_sd import build_tiny_pipeline  # noqa: E402
from training.train_ropo import (  # noqa: E402
    RopoConfig,
    build_dataloader,
    compute_loss,
    load_components,
)

BENCH_PHOTOS = Path("/work/bench-data/photos-2to4mp")  # benchmarks/photo_pool.py output


def write_shards(folder: Path, count: int) -> tuple[list[Path], str]:
    """`count` 2-4 MP JPEG samples with captions, in the export's WebDataset layout."""
    import webdataset as wds

    folder.mkdir(parents=True, exist_ok=True)
    photos = sorted(BENCH_PHOTOS.glob("*.jpg"))[:count] if BENCH_PHOTOS.is_dir() else []
    source = f"{BENCH_PHOTOS} (2-4 MP)" if photos else "bundled photos resized to 1920x1280"
    with wds.ShardWriter(str(folder / "shard-%06d.tar"), maxcount=16, verbose=0) as sink:
        for i in range(count):
            if photos:
                data = photos[i].read_bytes()
            else:
                base = Image.open(colour_photos()[i % len(colour_photos())]).convert("RGB")
                path = folder / "tmp.jpg"
                base.resize((1920, 1280), Image.Resampling.BICUBIC).save(path, quality=92)
                data = path.read_bytes()
            sink.write({"__key__": f"{i:08d}", "jpg": data,
                        "txt": f"a detailed photograph number {i}".encode()})
    (folder / "tmp.jpg").unlink(missing_ok=True)
    return find_shards(folder), source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="Fewer steps, for a quick check.")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of the training step (2 threads on a loaded 2-core "
                             "machine spin against each other: 10x slower steps)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steps, rounds, samples = (4, 2, 24) if args.small else (8, 3, 48)


    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = build_tiny_pipeline(tmp / "sd")
        shards, source = write_shards(tmp / "shards", samples)
        tokenizer, text_encoder, vae, unet, scheduler = load_components(model)
        optimizer = torch.optim.AdamW(unet.parameters(), lr=5e-5)
        cfg = RopoConfig(resolution=args.resolution)

        def step(batch: dict) -> None:
            loss = compute_loss(batch, unet, vae, text_encoder, scheduler, torch.float32)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        # Data alone, in this process: the cost the workers have to hide.
        loader0 = iter(build_dataloader(shards, cfg, tokenizer, args.batch_size, 0, seed=0))
        next(loader0)
        started = time.perf_counter()
        memory_batches = [next(loader0) for _ in range(steps)]
        data_s = (time.perf_counter() - started) / steps

        loader = build_dataloader(shards, cfg, tokenizer, args.batch_size, args.workers, seed=1)
        batches = iter(loader)
        for _ in range(2):  # warm-up: worker start, first shard reads, allocator
            step(next(batches))
            step(memory_batches[0])
        per_step = {"memory": [], "shards": []}
        for _ in range(rounds):
            started = time.perf_counter()
            for i in range(steps):
                step(memory_batches[i % len(memory_batches)])
            per_step["memory"].append((time.perf_counter() - started) / steps)
            started = time.perf_counter()
            for _ in range(steps):
                step(next(batches))
            per_step["shards"].append((time.perf_counter() - started) / steps)

    memory = statistics.median(per_step["memory"])
    shards_s = statistics.median(per_step["shards"])
    print(f"photos: {source}; {samples} samples; resolution {args.resolution}; "
          f"batch {args.batch_size}; {args.workers} DataLoader workers; "
          f"{rounds} rounds x {steps} steps; torch threads {torch.get_num_threads()}")
    print(f"data only (0 workers, in-process): {data_s * 1000:.0f} ms/batch")
    print(f"step, in-memory batches:           {memory * 1000:.0f} ms")
    print(f"step, shards + degradation:        {shards_s * 1000:.0f} ms")
    print(f"ratio shards / memory:             {shards_s / memory:.2f}x  (goal <= 1.10)")


if __name__ == "__main__":
    main()
