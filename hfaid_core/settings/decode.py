"""The [decode] section: the pixel and memory budget every decode in every process respects."""

from __future__ import annotations

from dataclasses import dataclass

from hfaid_core.settings.ranges import ranged


@dataclass
class DecodeConfig:
    # Declared width x height above this is recorded as `too_large` before any pixel is decoded
    # (score, export, caption, review previews, report); = [clean] max_pixels by default.
    max_pixels: int = ranged(100_000_000, 1)
    # Host memory one image may take in one metric: its decode, plus the metric's working set
    # when the metric runs on the CPU (on a GPU: up to half the device's memory). Metrics that
    # tile (NIQE) stay within it; an estimate over it is recorded as `too_large`.
    image_memory_mb: int = ranged(3072, 64)
