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

from curation.stage1.blockiness import BLOCKINESS_VERSION, blockiness
from curation.stage1.cuts import CUT_BY_KEY, CUTS, cut_value, explain_rows, parse_rule
from curation.stage1.noise import NOISE_VERSION, noise_sigma
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

MEASURE_VERSION = "clean-2"  # bump when a measurement's definition changes (noise and
# blockiness too: their scores carry NOISE_VERSION / BLOCKINESS_VERSION, re-measured with it)
PHASH_VERSION = "phash-1"  # imagehash.phash (8x8 bits) of the upright image's 32x32 luma
MEASURED_METRICS = (
    "laplacian_var",
    "detail_ratio",
    "brightness",
    "luma_p99",
    "luma_p05",
    "entropy",
    "gray_delta",
    "short_side",
    "aspect_ratio",
    "gray_mode",
    "transparent_fraction",
    "n_frames",
    "noise_sigma",
    "blockiness",
)
# Measures on the full-resolution band keep their own versions; the rest share measure_version.
OWN_VERSIONS = {"noise_sigma": NOISE_VERSION, "blockiness": BLOCKINESS_VERSION}

# Checks in reporting order; the first failure is the outcome's reason, the detail lists all.
# File-level properties first, then exposure and information (a black frame is "too_dark",
# not "grayscale" or "blurry"), then colour, then sharpness, compression and noise.
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
    "blocky",
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
    """Numbers for every stage-1 check, from the upright measurement image and the band."""
    rgb = decoded.rgb
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)  # ITU-R 601 luma, as PIL's "L"
    hist = cv2.calcHist([gray], [0], None, [256], [0, 256]).ravel().astype(np.float64)
    p = hist[hist > 0] / gray.size
    cumulative = np.cumsum(hist) / gray.size
    # Per-pixel channel spread with OpenCV: numpy's reductions over a length-3 axis are slow.
    r, g, b = cv2.split(rgb)
    spread = cv2.subtract(cv2.max(cv2.max(r, g), b), cv2.min(cv2.min(r, g), b))
    short, long = sorted((decoded.width, decoded.height))
    lap_var = _laplacian_var(gray)
    return {
        "laplacian_var": lap_var,
        "detail_ratio": _detail_ratio(gray, lap_var),
        "brightness": float(cv2.mean(gray)[0]),
        # High and low percentiles, as CleanVision's dark and light scores: a night sky is not
        # dark while its stars are bright, nor a snow field too bright while it has shadows.
        "luma_p99": float(np.searchsorted(cumulative, 0.99)),
        "luma_p05": float(np.searchsorted(cumulative, 0.05)),
        "entropy": float(max(0.0, -(p * np.log2(p)).sum())),
        "gray_delta": float(cv2.mean(spread)[0]),
        "short_side": float(short),
        "aspect_ratio": float(long / short),
        "gray_mode": 1.0 if decoded.gray_mode else 0.0,
        "transparent_fraction": decoded.transparent_fraction,
        "n_frames": float(decoded.n_frames),
        "noise_sigma": noise_sigma(decoded.band),
        "blockiness": blockiness(decoded.band),
        "phash": _phash64(gray),
    }


def _laplacian_var(gray: np.ndarray) -> float:
    """LSDIR's sharpness measure: variance of the 3x3 Laplacian of the luma."""
    if gray.size <= 1:
        return 0.0
    _, lap_std = cv2.meanStdDev(cv2.Laplacian(gray, cv2.CV_32F))
    return float(lap_std[0, 0] ** 2)


def _detail_ratio(gray: np.ndarray, lap_var: float) -> float:
    """Laplacian variance at the measurement scale over the same one octave down (+1 each).

    Natural photographs look alike across scales (their spectra fall as a power of frequency),
    so a sharp one measures about 0.4-2 whatever its content; blur removes the finest octave
    first and drives the ratio towards 1/16, the limit for a smooth image. The raw variance
    also depends on how much texture the scene has (a retina scan is smooth and sharp).
    """
    height, width = gray.shape
    half = cv2.resize(
        gray, (max(1, width // 2), max(1, height // 2)), interpolation=cv2.INTER_AREA
    )
    return (lap_var + 1.0) / (_laplacian_var(half) + 1.0)


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
    """Outcomes (image_id, stage, status, reason, detail) from stored measurements + cuts."""
    cols, ok, failed, describe = _evaluate(measured, cfg)
    n = measured.num_rows
    status = np.where(ok, "pass", cols["status"]).astype(object)
    reason = np.array(cols["reason"], dtype=object)
    detail = np.array(cols["detail"], dtype=object)
    failures: list[list[str]] = [[] for _ in range(n)]
    for check in CHECK_ORDER:
        for name in _CHECK_PARTS[check]:
            for i in np.flatnonzero(failed[name] & ok):
                failures[i].append(describe[name](i))
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


def explain(measured: pa.Table, cfg: CleanConfig) -> list[dict[str, Any]]:
    """Per cut: distribution of its measure, rule, threshold, images it fails (`--explain`)."""
    cols, ok, failed, _ = _evaluate(measured, cfg)
    values = {c.measure: _values(cols, c.measure) for c in CUTS}
    return explain_rows(values, ok, cfg, {c.key: failed[c.key] & ok for c in CUTS})


def pool_view(measured: pa.Table, cfg: CleanConfig) -> dict[str, Any]:
    """What the report draws: the explain rows, each cut measure's values over decoded images,
    and whether it is read on a log scale."""
    cols, ok, _, _ = _evaluate(measured, cfg)
    return {
        "cuts": explain(measured, cfg),
        "values": {c.measure: _values(cols, c.measure)[ok] for c in CUTS},
        "log": {c.measure: c.log for c in CUTS},
        "measures": MEASURED_METRICS,  # every stored stage-1 score, cut or not
    }


# Each check's parts: cut keys of curation.stage1.cuts, or the two checks that are flags.
_CHECK_PARTS: dict[str, tuple[str, ...]] = {
    check: tuple(c.key for c in CUTS if c.check == check) for check in CHECK_ORDER
}
_CHECK_PARTS["grayscale_mode"] = ("grayscale_mode",)
_CHECK_PARTS["animated"] = ("animated",)


def _values(cols: dict[str, np.ndarray], name: str) -> np.ndarray:
    """A stored measure as float64 with NaN where it was not measured (e.g. no band)."""
    values = cols[name]
    if values.dtype == object:
        values = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    values = values.astype(np.float64)
    if name == "gray_delta":  # single-channel files are `grayscale_mode`, not measured again
        values = np.where(_values(cols, "gray_mode") > 0, np.nan, values)
    return values


def _evaluate(measured: pa.Table, cfg: CleanConfig):
    """Columns, decoded mask, per-part failure masks and per-part detail writers."""
    cols = {
        name: measured.column(name).to_numpy(zero_copy_only=False) for name in measured.column_names
    }
    ok = cols["status"] == "ok"
    scale = f" at x{cfg.measure_scale}"
    failed: dict[str, np.ndarray] = {}
    describe: dict[str, Any] = {}
    for cut in CUTS:
        values = _values(cols, cut.measure)
        threshold = cut_value(cut, cfg, values[ok])
        failed[cut.key] = cut.fails(values, threshold) & np.isfinite(values)
        rule = cfg.pool.get(cut.key)
        where = scale if cut.measure in ("laplacian_var", "detail_ratio") else ""
        source = f" (pool {rule})" if rule else ""
        describe[cut.key] = functools.partial(
            _describe, cut.measure, values, f"{cut.op} {threshold:.4g}{cut.unit}{where}{source}"
        )
    gray_mode = np.nan_to_num(_values(cols, "gray_mode")) > 0
    frames = np.nan_to_num(_values(cols, "n_frames"))
    failed["grayscale_mode"] = gray_mode
    describe["grayscale_mode"] = lambda i: "single-channel (grayscale) file"
    failed["animated"] = (frames > 1) & cfg.reject_animated
    describe["animated"] = lambda i: f"animated ({frames[i]:.0f} frames)"
    return cols, ok, failed, describe


def _describe(measure: str, values: np.ndarray, condition: str, i: int) -> str:
    return f"{measure} {values[i]:.4g} {condition}"


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
        merge=lambda files: merge_clean_results(
            catalog, files, run_id, version, metric_versions(cfg), PHASH_VERSION
        ),
        shard_size=shard_size,
        workers=workers,
        description="clean",
        run_id=run_id,
        # spawn, not fork: OpenCV's thread pool is not fork-safe once the parent has used it
        # (a forked worker hung in the test process), so clean pays the worker start-up.
    )
    stats = run_job(job)
    return stats, decide(stored_measurements(catalog, cfg), cfg)


def metric_versions(cfg: CleanConfig) -> dict[str, str]:
    """The score version of each stage-1 measure."""
    version = measure_version(cfg)
    return {m: OWN_VERSIONS.get(m, version) for m in MEASURED_METRICS}


def stored_measurements(catalog: Catalog, cfg: CleanConfig) -> pa.Table:
    """Every measured image's decode verdict and measures at the configured versions."""
    return clean_measurements(catalog, measure_version(cfg), metric_versions(cfg))


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
    for key, rule in cfg.pool.items():
        if key not in CUT_BY_KEY:
            known = ", ".join(c.key for c in CUTS)
            raise HfaidError(f"[clean.pool] {key}: not a cut; cuts are {known}")
        try:
            parse_rule(rule)
        except (ValueError, TypeError) as exc:
            raise HfaidError(f"[clean.pool] {key}: {exc}") from None
