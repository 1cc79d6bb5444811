"""NIQE's block features: pyiqa's `compute_feature` vs `classical.niqe_block_features`.

Usage: .venv/bin/python benchmarks/bench_niqe_features.py [--images 8] [--rounds 5]
       [--sizes 1080x800,512x384] [--device cpu|cuda]

The NIQE scorer (`classical.niqe_score`) on real-photo JPEGs, one image per forward as on CPU,
with its block features computed by pyiqa's `compute_feature` (which rebuilds its 9801-point
AGGD shape grid and searches all of it for every block, five times per scale) and by
`niqe_block_features` (the grid once, a binary search). Rounds alternate between the two;
best of --rounds. The scores are compared too: they must be identical.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import curation.scorers.classical as classical  # noqa: E402
from benchmarks.bench_scorers import make_pool  # noqa: E402
from curation.scorers import create_scorer  # noqa: E402
from curation.scorers.inputs import load_for_policy  # noqa: E402

OURS = classical.niqe_block_features


def pass_over(scorer, images: list[torch.Tensor], features, device: str) -> tuple[float, list]:
    """Seconds to score every image alone with these block features, and the scores."""
    classical.niqe_block_features = features  # niqe_score reads the module's name per call
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    scores = [scorer.score(image[None])[0] for image in images]
    return time.perf_counter() - started, scores


def main() -> None:
    from pyiqa.archs.niqe_arch import compute_feature

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sizes", default="1080x800,512x384")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    scorer = create_scorer("niqe", device=args.device)
    ways = {"pyiqa compute_feature": compute_feature, "niqe_block_features": OURS}
    print(f"NIQE, {args.images} real-photo JPEGs per size, one per forward, {args.device}, "
          f"best of {args.rounds} interleaved rounds; torch threads {torch.get_num_threads()}")
    print("| size | pyiqa features img/s | ours img/s | ours / pyiqa | scores identical |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            width, height = (int(v) for v in size.split("x"))
            paths = make_pool(Path(tmp) / size, args.images, [(width, height)])
            images = [load_for_policy(str(p), scorer.input_policy).to(args.device) for p in paths]
            pass_over(scorer, images[:1], OURS, args.device)  # warm-up: the cached grid
            best: dict[str, float] = {}
            scores: dict[str, list] = {}
            for _ in range(args.rounds):
                for name, features in ways.items():
                    seconds, scores[name] = pass_over(scorer, images, features, args.device)
                    best[name] = min(best.get(name, seconds), seconds)
            classical.niqe_block_features = OURS
            theirs, ours = (len(images) / best[name] for name in ways)
            same = scores["pyiqa compute_feature"] == scores["niqe_block_features"]
            print(f"| {size} | {theirs:.2f} | {ours:.2f} | {ours / theirs:.2f}x | {same} |",
                  flush=True)


if __name__ == "__main__":
    main()
