"""The [export] config section (kept free of heavy imports: hfaid_core.config loads it)."""

from __future__ import annotations

from dataclasses import dataclass

from hfaid_core.settings.ranges import ranged


@dataclass
class ExportConfig:
    format: str = "webdataset"  # webdataset | imagefolder
    status: str = "accepted"  # accepted | rejected | queued | all | passed:STAGE
    captions: str = "required"  # required: an unflagged generated caption; any: best available
    maxcount: int = ranged(10_000, 1)  # samples per shard (webdataset)
    maxsize: int = ranged(1_000_000_000, 1)  # bytes per shard (webdataset)
    resize: str = "none"  # none | max:N | short:N | crop:N (see docs/CONFIG.md)
    image_format: str = "keep"  # keep (original bytes) | jpg | png (re-encode every image)
    jpeg_quality: int = ranged(95, 1, 100)  # for re-encoded JPEGs
    pairs: bool = False  # add a degraded low-resolution image and its text per sample
    scale: int = ranged(4, 1)  # low-resolution factor for pairs
    seed: int = ranged(0, 0)  # pairs: per-image generator seeded by (seed, image_id)
