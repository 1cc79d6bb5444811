"""NIQE and BRISQUE as built vs with pyiqa's own pieces put back (identical scores).

Usage: .venv/bin/python benchmarks/bench_classical.py [--metrics niqe,brisque] [--images 8]
       [--rounds 5] [--sizes 1080x800,512x384] [--device cpu|cuda]

Each scorer on real-photo JPEGs, one image per forward as on CPU, two ways in alternating
rounds, best of --rounds:
- "pyiqa pieces": NIQE with pyiqa's `compute_feature` (which rebuilds its 9,801-point AGGD
  shape grid and searches all of it for every block) and pyiqa's `imresize` (which unfolds 10
  taps of the whole image, then keeps every other row); BRISQUE as pyiqa's `brisque()`;
- "as built": `nss.niqe_block_features` / `nss.brisque_features` and `matlab_resize.imresize`.
The scores of both ways are compared: they must be identical.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import curation.scoring.scorers.classical as classical  # noqa: E402
from benchmarks.bench_scorers import make_pool  # noqa: E402
from curation.scoring.scorers import create_scorer  # noqa: E402
from curation.scoring.scorers.inputs import load_for_policy  # noqa: E402

AS_BUILT = {name: getattr(classical, name) for name in
            ("niqe_block_features", "imresize", "brisque_score")}  # fmt: skip


def pyiqa_pieces() -> dict:
    """The module names that `niqe_score` and BRISQUE's forward read, bound to pyiqa's code."""
    from pyiqa.archs.brisque_arch import brisque
    from pyiqa.archs.niqe_arch import compute_feature
    from pyiqa.matlab_utils import imresize

    def pyiqa_brisque(x: torch.Tensor, model: dict) -> torch.Tensor:
        return brisque(x, 7, 7 / 6, True, model["sv_coef"], model["sv"], model["gamma"],
                       model["rho"], 1, "original")  # fmt: skip

    return {
        "niqe_block_features": compute_feature,
        "imresize": lambda x, scale: imresize(x, scale=scale, antialiasing=True),
        "brisque_score": pyiqa_brisque,
    }


def use(pieces: dict) -> None:
    for name, piece in pieces.items():
        setattr(classical, name, piece)  # read from the module on every call


def pass_over(scorer, images: list[torch.Tensor], pieces: dict, device: str):
    """Seconds to score every image alone with these pieces, and the scores."""
    use(pieces)
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    scores = [scorer.score(image[None])[0] for image in images]
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", default="niqe,brisque")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sizes", default="1080x800,512x384")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    ways = {"pyiqa pieces": pyiqa_pieces(), "as built": AS_BUILT}
    print(f"{args.images} real-photo JPEGs per size, one per forward, {args.device}, best of "
          f"{args.rounds} interleaved rounds; torch threads {torch.get_num_threads()}")
    print("| metric | size | pyiqa pieces img/s | as built img/s | as built / pyiqa | identical |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for metric in args.metrics.split(","):
            scorer = create_scorer(metric, device=args.device)
            for size in args.sizes.split(","):
                width, height = (int(v) for v in size.split("x"))
                paths = make_pool(Path(tmp) / size, args.images, [(width, height)])
                images = [load_for_policy(str(p), scorer.input_policy).to(args.device)
                          for p in paths]  # fmt: skip
                pass_over(scorer, images[:1], AS_BUILT, args.device)  # warm-up: cached grids
                best: dict[str, float] = {}
                scores: dict[str, list] = {}
                for _ in range(args.rounds):
                    for way, pieces in ways.items():
                        seconds, scores[way] = pass_over(scorer, images, pieces, args.device)
                        best[way] = min(best.get(way, seconds), seconds)
                use(AS_BUILT)
                theirs, ours = (len(images) / best[way] for way in ways)
                same = scores["pyiqa pieces"] == scores["as built"]
                print(f"| {metric} | {size} | {theirs:.2f} | {ours:.2f} | {ours / theirs:.2f}x "
                      f"| {same} |", flush=True)


if __name__ == "__main__":
    main()
