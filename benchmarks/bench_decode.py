"""The scoring runner's decode pipeline without a model: what caps fast metrics on a GPU.

Usage: .venv/bin/python benchmarks/bench_decode.py [--images 256] [--workers 1,2] [--rounds 3]
       python benchmarks/bench_decode.py --device cuda --workers 8,15   (on a GPU host)

1080x800 real-photo JPEGs go through `ScoreWorker`'s own DataLoader (decode workers, the batch
collate, shared memory to this process, the join; with no model nothing copies the images out
here), in pieces of 4 as a batch of 16 is split. The rows run in the same run, side by side,
each one change on the row before:
- "fresh, Pillow": a new shared-memory segment per piece, as torch's default collate does,
  and every JPEG decoded by Pillow;
- "pooled, Pillow": workers collate into shared buffers they reuse (`hfaid_core.shm_buffers`);
- "pooled, libjpeg-turbo": JPEGs decoded to RGB by simplejpeg (`inputs._turbo_jpeg`).
Reported: images/s, and CPU ms per image in the decode workers (read from /proc) and in this
process. "decode alone" is the single-thread cost of `load_hwc` (decode + EXIF + RGB array),
the floor a worker's cost can approach.

With --device cuda the code as it is runs as a GPU scoring job feeds its model: pieces are
page-locked by the DataLoader's pin thread and each batch's 4 pieces joined on the GPU; the
second row leaves pinning out (the model's thread copies from shared memory to the GPU). This
is the rate a GPU job's decoding can feed a model at: if it is near a fast metric's runner
rate, decoding is what holds that metric below its model-only rate.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import curation.scoring.job as score  # noqa: E402
import curation.scoring.scorers.inputs as inputs  # noqa: E402
import hfaid_core.shm_buffers as shm_buffers  # noqa: E402
from benchmarks.bench_scorers import make_pool  # noqa: E402
from curation.scoring.job import DECODE_PIECES, ScoreSettings, ScoreWorker, _Decoded  # noqa: E402
from curation.scoring.scorers.base import InputPolicy  # noqa: E402
from curation.scoring.scorers.inputs import load_hwc  # noqa: E402

POLICY = InputPolicy(mode="full", min_side=1)
POOLED = shm_buffers.MAX_POOLED
BY_NAME = score.share_buffers_by_name
TURBO_MODES = inputs._TURBO_JPEG_MODES
PIECE = 4  # a batch of 16 split for 4+ decode workers (curation.scoring.job.DECODE_PIECES)
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """user + system CPU seconds of these processes so far."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / TICKS


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# (name, pooled buffers, libjpeg-turbo JPEG decode, buffers shared by name); each compared with
# the row before it.
ROWS = [("fresh, Pillow, by fd", False, False, False),
        ("pooled, Pillow, by fd", True, False, False),
        ("pooled, libjpeg-turbo, by fd", True, True, False),
        ("pooled, libjpeg-turbo, by name", True, True, True)]


def use(pooled: bool, turbo: bool, by_name: bool = True) -> None:
    """Forked workers read these when they decode and collate: MAX_POOLED 0 keeps no buffer
    (a new segment per piece); no turbo modes sends every JPEG through Pillow; without
    `share_buffers_by_name` workers keep torch's file-descriptor sharing."""
    shm_buffers.MAX_POOLED = POOLED if pooled else 0
    inputs._TURBO_JPEG_MODES = TURBO_MODES if turbo else set()
    score.share_buffers_by_name = BY_NAME if by_name else None


def decode_alone_ms(paths: list[Path]) -> float:
    started = time.perf_counter()
    for path in paths:
        load_hwc(str(path), POLICY)
    return 1000 * (time.perf_counter() - started) / len(paths)


# On a GPU: (name, pinned by the DataLoader's pin thread), the code as it is first.
# (name, pinned, shared by name)
CUDA_ROWS = [("pooled, libjpeg-turbo, by name, pinned", True, True),
             ("pooled, libjpeg-turbo, by fd, pinned", True, False),
             ("pooled, libjpeg-turbo, by name, not pinned", False, True)]


def pipeline(
    paths: list[Path], workers: int, rounds: int, device: str = "cpu", pinned: bool = True
) -> dict[str, float]:
    """Best round: images/s, worker CPU ms/image, this process's CPU ms/image (on a GPU with
    the pin thread's, and each batch of DECODE_PIECES pieces joined on the device)."""
    worker = ScoreWorker(ScoreSettings(metrics=("niqe",), device=device, decode_workers=workers))
    loader, sampler = worker._loader(POLICY, workers)
    loader.pin_memory = loader.pin_memory and pinned  # read when an epoch's iterator starts
    batches = [[(i, str(paths[i])) for i in range(k, min(k + PIECE, len(paths)))]
               for k in range(0, len(paths), PIECE)]
    per_batch = DECODE_PIECES if device == "cuda" else 1
    best: dict[str, float] = {}
    iterator = None
    for _ in range(rounds + 1):  # the first round starts the workers
        sampler.batches = batches
        iterator = iter(loader)
        pids = [p.pid for p in iterator._workers]
        wall, work, own = time.perf_counter(), cpu_seconds(pids), own_cpu_seconds()
        pieces = []
        for piece in iterator:
            pieces.append(piece)
            if len(pieces) == per_batch:
                _Decoded.join(pieces, torch.device(device))
                for done in pieces:
                    worker.returned.hand_back(done.flag)
                pieces = []
        if pieces:
            _Decoded.join(pieces, torch.device(device))
        if device == "cuda":
            torch.cuda.synchronize()
        wall = time.perf_counter() - wall
        row = {
            "img_s": len(paths) / wall,
            "worker_ms": 1000 * (cpu_seconds(pids) - work) / len(paths),
            "main_ms": 1000 * (own_cpu_seconds() - own) / len(paths),
        }
        if not best or row["img_s"] > best["img_s"]:
            best = row
    del iterator, loader, worker
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    torch.set_num_threads(1)  # this process only copies; the cores are the workers'
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_pool(Path(tmp), args.images, [(1080, 800)])
        print(f"{args.images} JPEGs, 1080x800, pieces of {PIECE}; CPU: {os.cpu_count()} cores")
        alone = {}
        for turbo in (False, True):
            use(True, turbo)
            alone[turbo] = min(decode_alone_ms(paths) for _ in range(3))
        print(f"decode alone (one thread, ms/image): Pillow {alone[False]:.2f}, libjpeg-turbo "
              f"{alone[True]:.2f} ({alone[False] / alone[True]:.2f}x)")
        print("workers | decode + buffers | images/s | worker CPU ms/img | this process ms/img "
              "| decode alone / worker CPU")
        for workers in (int(w) for w in args.workers.split(",")):
            if args.device == "cuda":
                gpu_rows(paths, workers, args.rounds, alone[True])
                continue
            rows = []
            for name, pooled, turbo, by_name in ROWS:
                use(pooled, turbo, by_name)
                rows.append(pipeline(paths, workers, args.rounds))
                r = rows[-1]
                print(f"{workers} | {name} | {r['img_s']:.0f} | {r['worker_ms']:.2f} | "
                      f"{r['main_ms']:.2f} | {alone[turbo] / r['worker_ms']:.2f}")
            for k in range(1, len(ROWS)):
                name, before, after = ROWS[k][0], rows[k - 1], rows[k]
                print(f"{workers} | {name} / previous row | "
                      f"{after['img_s'] / before['img_s']:.2f}x images/s | "
                      f"{before['worker_ms'] / after['worker_ms']:.2f}x less worker CPU |")


def gpu_rows(paths: list[Path], workers: int, rounds: int, alone_ms: float) -> None:
    rows = []
    for name, pinned, by_name in CUDA_ROWS:
        use(True, True, by_name)
        rows.append(pipeline(paths, workers, rounds, "cuda", pinned))
        r = rows[-1]
        print(f"{workers} | {name} | {r['img_s']:.0f} | {r['worker_ms']:.2f} | "
              f"{r['main_ms']:.2f} | {alone_ms / r['worker_ms']:.2f}", flush=True)
    print(f"{workers} | by name / by fd (pinned) | {rows[0]['img_s'] / rows[1]['img_s']:.2f}x "
          f"images/s | pinned / not pinned | {rows[0]['img_s'] / rows[2]['img_s']:.2f}x |")


if __name__ == "__main__":
    main()
