"""Full-resolution noise level: the wavelet MAD estimate on a few fixed crops of the top band.

Donoho & Johnstone, "Ideal spatial adaptation by wavelet shrinkage", Biometrika 81(3), 1994,
section 4.2: for Gaussian noise of standard deviation sigma, the finest diagonal (HH) detail
coefficients of an orthonormal wavelet transform are dominated by noise, and
sigma = median(|HH|) / 0.6745 is robust to the few large coefficients that edges leave.
This is scikit-image's `restoration.estimate_sigma` (Daubechies-2 wavelet, exact zeros
excluded); tests compare the two on the same crops. It is measured on the full-size pixels,
where noise lives: the Laplacian at measure_scale averages it away.
"""

from __future__ import annotations

import cv2
import numpy as np

NOISE_VERSION = "noise-mad-db2-1"  # bump when the crops or the estimator change
CROP = 64  # px, square crops along the top band
N_CROPS = 4
MIN_SIDE = 16  # smaller bands have too few coefficients for a median
MAX_CLIPPED = 0.05  # share of a crop's pixels at 0 or 255 above which it is left out
# Daubechies-2 high-pass decomposition filter (pywt.Wavelet("db2").dec_hi) reversed, as
# correlation wants it; orthonormal, so white noise keeps its sigma in the HH band.
_DB2_HI = np.array(
    [-0.12940952255126037, -0.2241438680420134, 0.8365163037378079, -0.48296291314453416],
    dtype=np.float32,
)
_MAD_TO_SIGMA = 0.6744897501960817  # scipy.stats.norm.ppf(0.75)
_ZERO = 1e-3  # coefficients of integer pixels are 0 or far above this


def crop_boxes(height: int, width: int) -> list[tuple[int, int, int, int]]:
    """(top, left, bottom, right) of the fixed crops: N_CROPS squares spread over the band's
    width at 8-pixel-aligned offsets (fewer when the band is narrow)."""
    side = min(CROP, height, width)
    if side < MIN_SIDE:
        return []
    count = max(1, min(N_CROPS, width // side))
    span = width - side
    lefts = sorted({(span * k // max(1, count - 1)) // 8 * 8 for k in range(count)})
    return [(0, left, side, left + side) for left in lefts]


def hh_coefficients(crop: np.ndarray) -> np.ndarray:
    """The db2 level-1 diagonal detail coefficients of a crop (as pywt.dwt2's cD, with
    symmetric extension; coefficients of the full-length output)."""
    return _hh_of_stack([crop])[0]


def _hh_of_stack(crops: list[np.ndarray]) -> list[np.ndarray]:
    """hh_coefficients of same-shape crops with one filter call (its set-up dominates here)."""
    pad = len(_DB2_HI) - 1
    # pywt's "symmetric" mode repeats the edge sample (cv2's BORDER_REFLECT); each crop is
    # extended on its own, then the crops are stacked so one call filters them all.
    padded = [
        cv2.copyMakeBorder(c.astype(np.float32), pad, pad, pad, pad, cv2.BORDER_REFLECT)
        for c in crops
    ]
    stacked = np.vstack(padded) if len(padded) > 1 else padded[0]
    filtered = cv2.sepFilter2D(
        stacked, cv2.CV_32F, _DB2_HI, _DB2_HI, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT
    )
    height, width = crops[0].shape
    rows, cols = (height + pad) // 2, (width + pad) // 2
    step = height + 2 * pad
    # Output k of pywt's dwt is the filter over padded samples 2k+1 .. 2k+4.
    return [
        filtered[top + 1 : top + 1 + 2 * rows : 2, 1 : 1 + 2 * cols : 2]
        for top in range(0, step * len(crops), step)
    ]


def crop_sigma(crop: np.ndarray) -> float:
    """Donoho's MAD noise sigma of one crop (0-255 units), exact zeros masked out."""
    return _mad_sigma(hh_coefficients(crop))


def _mad_sigma(detail: np.ndarray) -> float:
    magnitude = np.abs(detail).ravel()
    magnitude = magnitude[magnitude > _ZERO]  # float32 rounding leaves ~1e-6 for exact zeros
    n = magnitude.size
    if n == 0:
        return 0.0
    # np.median's value through one partition (np.median's own overhead dominates here).
    half = n // 2
    if n % 2:
        median = float(np.partition(magnitude, half)[half])
    else:
        low, high = np.partition(magnitude, (half - 1, half))[half - 1 : half + 1]
        median = (float(low) + float(high)) / 2.0
    return median / _MAD_TO_SIGMA


def noise_sigma(band: np.ndarray | None) -> float | None:
    """The image's noise sigma: the lowest of its crops' estimates; None without a band.

    Noise is spread evenly over a photo, texture is not: fine texture (foliage, fur, falling
    snow) raises a crop's estimate, so the least textured crop is the closest to the noise.
    """
    crops = measured_crops(band)
    return min(_mad_sigma(hh) for hh in _hh_of_stack(crops)) if crops else None


def measured_crops(band: np.ndarray | None) -> list[np.ndarray]:
    """The fixed crops that carry a noise measurement: those not clipped at black or white.

    Noise cannot be seen where the signal is clipped (a night sky at 0, a blown sky at 255:
    half the noise is cut off), so crops with more than MAX_CLIPPED of their pixels at 0 or
    255 are left out, unless every crop is clipped.
    """
    if band is None:
        return []
    crops = [band[t:b, lo:hi] for t, lo, b, hi in crop_boxes(*band.shape[:2])]
    clipped = [np.count_nonzero((c == 0) | (c == 255)) / c.size for c in crops]
    unclipped = [c for c, share in zip(crops, clipped, strict=True) if share <= MAX_CLIPPED]
    return unclipped or crops
