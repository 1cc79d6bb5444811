"""JPEG blocking on the 8x8 grid: how much larger luma steps are across block edges than elsewhere.

The measure follows Wu & Yuen's generalized block-edge impairment metric (GBIM; "A generalized
block-edge impairment metric for video coding", IEEE Signal Processing Letters 4(11), 1997)
without its luminance-masking weights: the mean absolute difference between neighbouring
pixels across the grid's block boundaries, over the same mean at the other seven offsets
(horizontal and vertical steps pooled). The denominator is the strongest of those seven, not
their average, so content with its own 2- or 4-pixel period (dithering, coarse grain) reads
about 1 instead of high. A clean photo measures ~0.8-1.4; coarse quantisation flattens each
block and leaves its edges as steps, so JPEG quality <= 10 measures 2 and more. It runs on the
full-resolution top band, whose grid is the file's own (JPEG blocks start at pixel 0).
"""

from __future__ import annotations

import numpy as np

BLOCKINESS_VERSION = "gbim-max-1"
BLOCK = 8
# Added to both means (0-255 luma units): a flat band (sky, a blank frame) has no steps at
# all and must read ~1, not 0/0.
_FLOOR = 0.5


def blockiness(band: np.ndarray | None) -> float | None:
    """Mean step at block edges / the largest mean step at another offset; None if too small."""
    if band is None or min(band.shape[:2]) < 2 * BLOCK:
        return None
    luma = band.astype(np.int16)
    sums = np.zeros(BLOCK)
    counts = np.zeros(BLOCK)
    for diffs in (np.abs(np.diff(luma, axis=1)), np.abs(np.diff(luma, axis=0)).T):
        # diffs[:, j] is the step between columns j and j + 1; block edges are j = 7, 15, ...
        usable = diffs.shape[1] // BLOCK * BLOCK
        per_offset = diffs[:, :usable].reshape(diffs.shape[0], -1, BLOCK)
        sums += per_offset.sum(axis=(0, 1))
        counts += per_offset.shape[0] * per_offset.shape[1]
    means = sums / counts
    return float((means[BLOCK - 1] + _FLOOR) / (means[: BLOCK - 1].max() + _FLOOR))
