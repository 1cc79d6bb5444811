"""Stage 1 `hfaid clean`: measure every image once (decode check, pHash, sharpness...), then decide.

Measuring and deciding are split (as in Data-Juicer): the worker decodes each image once at
the measurement resolution and stores numbers (scores) plus the decode verdict; `decide`
applies the [clean] thresholds to the stored numbers, so re-tuning a threshold re-decides a
million images in seconds without decoding anything again.
"""

from __future__ import annotations

import ctypes
import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import imagehash
import numpy as np
import pyarrow as pa
from PIL import Image

from curation.stage1.safe_decode import Decoded, DecodeReject, decode_for_measurement
from db.stage1 import (
    CLEAN_RESULT_SCHEMA,
    clean_measurements,
    images_to_measure,
    merge_clean_results,
)
from hfaid_core.runner import JobStats, ShardJob, run_job
from hfaid_core.settings.stage1 import CleanConfig

if TYPE_CHECKING:  # workers import this module; they never open the catalog (or load duckdb)
    from db.catalog import Catalog

MEASURE_VERSION = "clean-1"  # bump when a measurement's definition changes
PHASH_VERSION = "phash-1"  # imagehash.phash (8x8 bits) of the upright image's 32x32 luma
MEASURED_METRICS = (
    "laplacian_var",
    "brightness",
    "entropy",
    "gray_delta",
    "short_side",
    "aspect_ratio",
    "gray_mode",
    "transparent_fraction",
    "n_frames",
)

# Checks in reporting order; the first failure is the outcome's reason, the detail lists all.
# File-level properties first, then exposure and information (a black frame is "too_dark",
# not "grayscale" or "blurry"), then colour, then sharpness.
CHECK_ORDER = (
    "grayscale_mode",
    "too_small",
    "aspect_ratio",
    "animated",
    "transparent",
    "too_dark",
    "too_bright",
    "low_information",
    "grayscale",
    "blurry",
    "noisy",
)


def measure_version(cfg: CleanConfig) -> str:
    """Version of stored measurements: the definition plus the resolution they are taken at."""
    return f"{MEASURE_VERSION}-x{cfg.measure_scale}"


@dataclass
class CleanWorker:
    """Reads each file once, decodes it at reduced size and measures it; never raises."""

    max_pixels: int
    measure_scale: int
    fast_decode: bool
    formats: tuple[str, ...]
    convert_icc: bool

    def __post_init__(self) -> None:
        keep_freed_memory()

    def process(self, items: pa.Table) -> pa.Table:
        cv2.setNumThreads(1)  # one image per process at a time; threads would oversubscribe
        rows = [self._one(row) for row in items.to_pylist()]
        return _result_table(rows)

    def _one(self, row: dict[str, Any]) -> dict[str, Any]:
        record: dict[str, Any] = {
            "image_id": row["image_id"],
            "status": "ok",
            "reason": None,
            "detail": None,
            "notes": None,
            "phash": None,
        }
        record.update(dict.fromkeys(MEASURED_METRICS))
        try:
            with open(row["path"], "rb") as fh:
                data = fh.read()
        except OSError as exc:
            record.update(
                status="error", reason="unreadable", detail=f"{row['path']}: {exc.strerror or exc}"
            )
            return record
        try:
            decoded = decode_for_measurement(
                data,
                self.max_pixels,
                self.measure_scale,
                self.fast_decode,
                set(self.formats),
                self.convert_icc,
            )
            record.update(measure(decoded))
            record["notes"] = ", ".join(decoded.notes)
        except DecodeReject as exc:
            record.update(status="reject", reason=exc.reason, detail=exc.detail)
        except MemoryError:
            record.update(
                status="error", reason="out_of_memory", detail="decoding ran out of memory"
            )
        except Exception as exc:  # a bug or decoder crash on one file must not stop the shard
            record.update(
                status="error", reason="measure_failed", detail=f"{type(exc).__name__}: {exc}"[:300]
            )
        return record


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory() -> None:
    """Let this process reuse freed heap instead of handing it back to the OS after each image.

    Every image allocates and frees a few MB (file bytes, pixels, float Laplacian). With glibc's
    adaptive defaults a long-lived worker shrinks its heap after an image and page-faults it
    back for the next: 5x the page faults of a fresh process and ~15% more time per image in a
    shard worker (docs/BENCHMARKS.md, stage 1, run 8). Fixed thresholds keep up to 256 MB of
    freed heap; blocks over 64 MB (a huge fallback decode) are still mapped and unmapped.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (macOS): its allocator needs no tuning here
        return
    mallopt(_M_MMAP_THRESHOLD, 64 << 20)
    mallopt(_M_TRIM_THRESHOLD, 256 << 20)


def measure(decoded: Decoded) -> dict[str, Any]:
    """Numbers for every stage-1 check, from the upright measurement image."""
    rgb = decoded.rgb
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)  # ITU-R 601 luma, as PIL's "L"
    hist = cv2.calcHist([gray], [0], None, [256], [0, 256]).ravel().astype(np.float64)
    p = hist[hist > 0] / gray.size
    # Per-pixel channel spread with OpenCV: numpy's reductions over a length-3 axis are slow.
    r, g, b = cv2.split(rgb)
    spread = cv2.subtract(cv2.max(cv2.max(r, g), b), cv2.min(cv2.min(r, g), b))
    short, long = sorted((decoded.width, decoded.height))
    # LSDIR's sharpness/noise measure: variance of the 3x3 Laplacian of the luma.
    _, lap_std = cv2.meanStdDev(cv2.Laplacian(gray, cv2.CV_32F))
    return {
        "laplacian_var": float(lap_std[0, 0] ** 2) if gray.size > 1 else 0.0,
        "brightness": float(cv2.mean(gray)[0]),
        "entropy": float(max(0.0, -(p * np.log2(p)).sum())),
        "gray_delta": float(cv2.mean(spread)[0]),
        "short_side": float(short),
        "aspect_ratio": float(long / short),
        "gray_mode": 1.0 if decoded.gray_mode else 0.0,
        "transparent_fraction": decoded.transparent_fraction,
        "n_frames": float(decoded.n_frames),
        "phash": _phash64(gray),
    }


# Rows 0-7 of the unnormalised DCT-II on 32 points, as scipy.fftpack.dct computes it.
_DCT_LOW = 2.0 * np.cos(np.pi * np.arange(8)[:, None] * (2 * np.arange(32)[None, :] + 1) / 64)
# Far above the float64 rounding of either DCT (< 1e-6 on 32x32 uint8 input).
_PHASH_TIE = 1e-3


def _phash64(gray: np.ndarray) -> int:
    """imagehash.phash's bits of the 32x32 area-averaged luma (its Lanczos resize is slow).

    The low 8x8 DCT block is two small matrix products; imagehash (scipy's FFT DCT, ~0.2 s to
    import per worker) is called only when a coefficient is within rounding of the median,
    where the two could disagree: flat and synthetic images, none of 5,000 photos.
    """
    small = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA)
    low = _DCT_LOW @ small.astype(np.float64) @ _DCT_LOW.T
    median = np.median(low)
    if np.abs(low - median).min() < _PHASH_TIE:
        bits = imagehash.phash(Image.fromarray(small)).hash.ravel()
    else:
        bits = (low > median).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def _result_table(rows: list[dict[str, Any]]) -> pa.Table:
    """rows as a CLEAN_RESULT_SCHEMA table, built from buffers: pyarrow's list conversion
    (pa.array, from_pylist) imports pandas, ~0.25 s of CPU at every worker's start."""
    n = len(rows)
    arrays = []
    for field in CLEAN_RESULT_SCHEMA:
        values = [row[field.name] for row in rows]
        valid = np.array([v is not None for v in values], dtype=bool)
        bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
        nulls = n - int(valid.sum())
        if pa.types.is_string(field.type):
            encoded = [v.encode() if v is not None else b"" for v in values]
            offsets = np.zeros(n + 1, dtype=np.int32)
            np.cumsum([len(e) for e in encoded], out=offsets[1:])
            buffers = [bitmap, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
        else:
            dtype = field.type.to_pandas_dtype()  # a numpy dtype; pandas is not imported
            data = np.array([v if v is not None else 0 for v in values], dtype=dtype)
            buffers = [bitmap, pa.py_buffer(data)]
        arrays.append(pa.Array.from_buffers(field.type, n, buffers, null_count=nulls))
    return pa.Table.from_arrays(arrays, schema=CLEAN_RESULT_SCHEMA)


def decide(measured: pa.Table, cfg: CleanConfig) -> pa.Table:
    """Outcomes (image_id, stage, status, reason, detail) from stored measurements + thresholds."""
    cols = {
        name: measured.column(name).to_numpy(zero_copy_only=False) for name in measured.column_names
    }
    n = measured.num_rows
    status = np.where(cols["status"] == "ok", "pass", cols["status"]).astype(object)
    reason = np.array(cols["reason"], dtype=object)
    detail = np.array(cols["detail"], dtype=object)
    ok = cols["status"] == "ok"
    failures: list[list[str]] = [[] for _ in range(n)]
    for check, failed, describe in _checks(cols, cfg):
        for i in np.flatnonzero(failed & ok):
            failures[i].append(describe(i))
            if status[i] == "pass":
                status[i], reason[i] = "reject", check
    for i in np.flatnonzero(ok):
        detail[i] = "; ".join(failures[i]) if failures[i] else (cols["notes"][i] or "ok")
    return pa.table(
        {
            "image_id": measured.column("image_id"),
            "stage": pa.array(["clean"] * n, pa.string()),
            "status": pa.array(status.tolist(), pa.string()),
            "reason": pa.array(reason.tolist(), pa.string()),
            "detail": pa.array(detail.tolist(), pa.string()),
        }
    )


def _checks(cols: dict[str, np.ndarray], cfg: CleanConfig):
    def val(name: str) -> np.ndarray:
        return np.nan_to_num(cols[name].astype(np.float64), nan=0.0)

    lap, bright, ent = val("laplacian_var"), val("brightness"), val("entropy")
    delta, short, aspect = val("gray_delta"), val("short_side"), val("aspect_ratio")
    gray_mode, transp, frames = val("gray_mode"), val("transparent_fraction"), val("n_frames")
    x = f"x{cfg.measure_scale}"
    checks = {
        "grayscale_mode": (gray_mode > 0, lambda i: "single-channel (grayscale) file"),
        "grayscale": (
            (gray_mode == 0) & (delta <= cfg.gray_tolerance),
            lambda i: (
                f"colour channels nearly equal (gray_delta {delta[i]:.2f} "
                f"<= {cfg.gray_tolerance:g})"
            ),
        ),
        "too_small": (
            short < cfg.min_short_side,
            lambda i: f"short side {short[i]:.0f} px < {cfg.min_short_side}",
        ),
        "aspect_ratio": (
            aspect > cfg.max_aspect_ratio,
            lambda i: f"aspect ratio {aspect[i]:.2f} > {cfg.max_aspect_ratio:g}",
        ),
        "animated": (
            (frames > 1) & cfg.reject_animated,
            lambda i: f"animated ({frames[i]:.0f} frames)",
        ),
        "transparent": (
            transp > cfg.max_transparent_fraction,
            lambda i: f"{transp[i]:.1%} transparent pixels > {cfg.max_transparent_fraction:.1%}",
        ),
        "blurry": (
            lap < cfg.laplacian_min,
            lambda i: f"laplacian_var {lap[i]:.1f} < {cfg.laplacian_min:g} at {x}",
        ),
        "noisy": (
            lap > cfg.laplacian_max,
            lambda i: f"laplacian_var {lap[i]:.1f} > {cfg.laplacian_max:g} at {x}",
        ),
        "too_dark": (
            bright < cfg.min_brightness,
            lambda i: f"mean brightness {bright[i]:.1f} < {cfg.min_brightness:g}",
        ),
        "too_bright": (
            bright > cfg.max_brightness,
            lambda i: f"mean brightness {bright[i]:.1f} > {cfg.max_brightness:g}",
        ),
        "low_information": (
            ent < cfg.min_entropy,
            lambda i: f"entropy {ent[i]:.2f} bits < {cfg.min_entropy:g}",
        ),
    }
    for name in CHECK_ORDER:
        failed, describe = checks[name]
        yield name, np.asarray(failed, dtype=bool), describe


def clean(
    catalog: Catalog, cfg: CleanConfig, run_id: int, workers: int, shard_size: int
) -> tuple[JobStats, pa.Table]:
    """Measure images not yet measured at this version, then decide every measured image."""
    version = measure_version(cfg)
    job = ShardJob(
        name=f"clean-{version}",
        work_dir=catalog.work_dir,
        pending=lambda: images_to_measure(catalog, version),
        worker_factory=functools.partial(
            CleanWorker,
            cfg.max_pixels,
            cfg.measure_scale,
            cfg.fast_decode,
            tuple(cfg.formats),
            cfg.convert_icc,
        ),
        merge=lambda files: merge_clean_results(catalog, files, run_id, version, PHASH_VERSION),
        shard_size=shard_size,
        workers=workers,
        description="clean",
        run_id=run_id,
        # spawn, not fork: OpenCV's thread pool is not fork-safe once the parent has used it
        # (a forked worker hung in the test process), so clean pays the worker start-up.
    )
    stats = run_job(job)
    outcomes = decide(clean_measurements(catalog, version, MEASURED_METRICS), cfg)
    return stats, outcomes


def validate(cfg: CleanConfig) -> None:
    """Reject settings that cannot mean anything, before any work starts."""
    from hfaid_core.errors import HfaidError

    if cfg.measure_scale < 1:
        raise HfaidError("[clean] measure_scale must be >= 1")
    if cfg.max_pixels < 1:
        raise HfaidError("[clean] max_pixels must be >= 1")
    if cfg.laplacian_min > cfg.laplacian_max:
        raise HfaidError("[clean] laplacian_min must not exceed laplacian_max")
    if cfg.max_aspect_ratio < 1 or math.isnan(cfg.max_aspect_ratio):
        raise HfaidError("[clean] max_aspect_ratio must be >= 1")
