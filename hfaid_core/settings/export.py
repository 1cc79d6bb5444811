"""The [export] config section (kept free of heavy imports: hfaid_core.config loads it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ExportConfig:
    format: str = "webdataset"  # webdataset | imagefolder
    status: str = "accepted"  # accepted | rejected | queued | all | passed:STAGE
    captions: str = "required"  # required: an unflagged generated caption; any: best available
    maxcount: int = 10_000  # samples per shard (webdataset)
    maxsize: int = 1_000_000_000  # bytes per shard (webdataset)
    resize: str = "none"  # none | max:N | short:N | crop:N (see docs/CONFIG.md)
    image_format: str = "keep"  # keep (original bytes) | jpg | png (re-encode every image)
    jpeg_quality: int = 95  # for re-encoded JPEGs
    pairs: bool = False  # add a degraded low-resolution image and its text per sample
    scale: int = 4  # low-resolution factor for pairs
    seed: int = 0  # pairs: per-image generator seeded by (seed, image_id)
