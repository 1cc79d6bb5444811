"""Working memory per input pixel of each metric on CPU: what `ScorerSpec.bytes_per_pixel` holds.

Usage: .venv/bin/python benchmarks/bench_image_memory.py [--metrics a,b] [--sizes 1,4]

Each (metric, size) runs in a fresh process: the scorer is built (random weights at real size),
warmed up on a 256 px image, the test image is decoded to uint8, then scored once. Working
memory = peak RSS during scoring - RSS before it (the decoded image excluded). The slope between
two sizes, per pixel, removes what does not grow with the image.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

METRICS = ("niqe", "brisque", "clipiqa", "clipiqa+", "musiq", "maniqa")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def measure(metric: str, megapixels: float, weights: str) -> dict:
    """In this process: working bytes of one image of about `megapixels`."""
    import numpy as np
    import torch
    from PIL import Image

    from curation.demo.photos import colour_photos
    from curation.scoring.scorers import create_scorer

    torch.set_num_threads(2)
    scorer = create_scorer(metric, weights_dir=weights)
    side_w = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    side_h = int(side_w * 3 / 4)
    photo = Image.open(colour_photos()[0]).convert("RGB")
    warm = torch.from_numpy(np.asarray(photo.resize((256, 256))).transpose(2, 0, 1).copy())
    scorer.score(warm[None])
    image = np.asarray(photo.resize((side_w, side_h), Image.Resampling.BICUBIC))
    x = torch.from_numpy(image.transpose(2, 0, 1).copy())[None]
    before = rss()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    scorer.score(x)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"metric": metric, "pixels": side_w * side_h, "working": max(0, peak - before),
            "peak_grew": peak > peak_before}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", default=",".join(METRICS))
    parser.add_argument("--sizes", default="1,4", help="two image sizes, megapixels")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], float(args.child[1]), args.child[2])))
        return
    from curation.scoring.scorers import random_weights as rw

    small, large = (float(s) for s in args.sizes.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp)
        for metric in args.metrics.split(","):
            if metric in ("clipiqa", "clipiqa+"):
                rw.write_clipiqa(weights, plus=metric == "clipiqa+", real_size=True)
            elif metric == "musiq":
                rw.write_musiq(weights)
            elif metric == "maniqa":
                rw.write_maniqa(weights)
            runs = []
            for mp in (small, large):
                out = subprocess.run(
                    [sys.executable, __file__, "--child", metric, str(mp), str(weights)],
                    capture_output=True, text=True, check=True,
                )
                runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            (a, b) = runs
            slope = (b["working"] - a["working"]) / (b["pixels"] - a["pixels"])
            print(f"| {metric} | {a['working'] / a['pixels']:.1f} | "
                  f"{b['working'] / b['pixels']:.1f} | {slope:.1f} |", flush=True)


if __name__ == "__main__":
    main()
