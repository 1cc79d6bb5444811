"""CLIP-IQA(+) with its prompt features encoded once vs pyiqa's encoding on every batch.

Usage: .venv/bin/python benchmarks/bench_clip_prompts.py [--rounds 3] [--batch 8]
       [--metrics clipiqa,clipiqa+] [--device cpu]

One scorer per metric with full-size random RN50 weights (real file layout); each round times
the same random batch through it as built (prompt features reused) and with pyiqa's own
per-call text encoding put back (the instance attributes that reuse them removed), alternating,
best of `--rounds`. Scores must agree exactly.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curation.scoring.scorers import create_scorer  # noqa: E402
from curation.scoring.scorers import random_weights as rw  # noqa: E402

SIZES = [(384, 512), (800, 1080)]  # (height, width)


def timed(scorer, batch: torch.Tensor, device: str) -> tuple[float, list[float]]:
    start = time.perf_counter()
    scores = scorer.score(batch)  # reads the scores back: waits for the device
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start, scores


def per_batch_encoding(scorer) -> None:
    """Back to pyiqa's behaviour: the class methods, which encode the prompts on each call."""
    net = scorer.built.module
    del net.clip_model[0].encode_text
    if hasattr(net, "prompt_learner"):
        del net.prompt_learner.forward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--metrics", default="clipiqa,clipiqa+")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print("| metric | size | batch | prompts once s/batch | every batch s/batch | ratio |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for metric in args.metrics.split(","):
            rw.write_clipiqa(Path(tmp), plus=metric == "clipiqa+", real_size=True)
            once = create_scorer(metric, device=args.device, dtype="float32", weights_dir=tmp)
            every = create_scorer(metric, device=args.device, dtype="float32", weights_dir=tmp)
            per_batch_encoding(every)
            for h, w in SIZES:
                torch.manual_seed(0)
                batch = torch.randint(0, 256, (args.batch, 3, h, w), dtype=torch.uint8)
                once.score(batch[:1]), every.score(batch[:1])  # warm-up
                best = {"once": 1e9, "every": 1e9}
                for _ in range(args.rounds):
                    for name, scorer in (("once", once), ("every", every)):
                        seconds, scores = timed(scorer, batch, args.device)
                        best[name] = min(best[name], seconds)
                        if name == "once":
                            reference = scores
                        else:
                            assert scores == reference, "scores differ"
                ratio = best["every"] / best["once"]
                print(f"| {metric} | {w}x{h} | {args.batch} | {best['once']:.3f} | "
                      f"{best['every']:.3f} | {ratio:.3f}x |")


if __name__ == "__main__":
    main()
