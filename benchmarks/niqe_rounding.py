"""Why NIQE on a GPU differs from pyiqa's per-image call by ~1e-4: Y rounding ties + AGGD grid.

Usage: .venv/bin/python benchmarks/niqe_rounding.py [--images 24] [--flips 3]

NIQE rounds the float32 Y channel to whole grey levels, then fits AGGD shapes by an argmin over
a grid of step 0.001. Two measurements on real-photo JPEGs of 1080x800:
1. how many pixels round differently when Y is summed in another order (float64 here, standing
   in for another float32 kernel, as a batch of 16 on a GPU gets);
2. how far NIQE moves when one pixel moves by one grey level (pyiqa's calculate_niqe, float64).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curation.scoring.scorers.classical import niqe_params  # noqa: E402
from tests.conftest import write_photo_pool  # noqa: E402


def main() -> None:
    from pyiqa.archs.niqe_arch import calculate_niqe
    from pyiqa.utils.color_util import rgb2yiq

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--flips", type=int, default=3, help="one-pixel changes per image")
    args = parser.parse_args()
    mu, cov = niqe_params()
    rng = np.random.default_rng(0)
    flipped, moves = [], []
    with tempfile.TemporaryDirectory() as tmp:
        pool = Path(tmp)
        write_photo_pool(pool, args.images, size=(1080, 800))
        for path in sorted(pool.glob("*.jpg")):
            rgb = np.asarray(Image.open(path).convert("RGB"))
            x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
            y32 = rgb2yiq(x)[:, :1] * 255
            y64 = rgb2yiq(x.double())[:, :1] * 255
            flipped.append(int((y32.round() != y64.round()).sum()))
            grey = y32.round()
            base = calculate_niqe(grey / 255, 0, True, "yiq", mu, cov).item()
            for _ in range(args.flips):
                moved = grey.clone().view(-1)
                i = rng.integers(0, moved.numel())
                moved[i] += 1 if moved[i] < 255 else -1
                score = calculate_niqe(moved.view_as(grey) / 255, 0, True, "yiq", mu, cov).item()
                moves.append(abs(score - base) / base)
    flipped_a, moves_a = np.array(flipped), np.array(moves)
    print(f"{args.images} images of 1080x800 ({1080 * 800} pixels each)")
    print(
        f"pixels whose rounded Y differs, float32 vs float64: median {np.median(flipped_a):.0f}"
        f", max {flipped_a.max()} per image; images with any: {(flipped_a > 0).sum()}"
    )
    print(
        f"NIQE relative change from one pixel +-1 grey level: max {moves_a.max():.2e}, "
        f"median {np.median(moves_a):.2e}, > 1e-5 in {(moves_a > 1e-5).sum()} of {len(moves_a)}"
    )


if __name__ == "__main__":
    main()
