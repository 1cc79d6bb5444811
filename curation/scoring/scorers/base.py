"""What a scorer is, as data: metric facts, input policy, precision, weights, how to build it."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

# EXIF orientations 5..8 rotate by 90 degrees, so the decoded image has width and height swapped.
_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}


@dataclass(frozen=True)
class InputPolicy:
    """How an image becomes the tensor a metric sees (its reference protocol by default).

    mode: "full" (full resolution; optional max_side downscale), "pad_square" (pad to a square
    with `fill`, then resize to size x size), "resize" (exact size x size).
    """

    mode: str = "full"
    size: int | None = None
    max_side: int | None = None  # "full" only: downscale so the longer side is at most this
    min_side: int = 1  # smaller images get a per-image error (reason "too_small")
    fill: tuple[int, int, int] = (0, 0, 0)

    def output_hw(self, width: int, height: int, orientation: int | None = None) -> tuple[int, int]:
        """The (height, width) the prepared tensor will have, from catalog metadata alone."""
        if orientation in _SWAPPING_ORIENTATIONS:
            width, height = height, width
        if self.mode in ("pad_square", "resize"):
            return (int(self.size), int(self.size))
        if self.max_side and max(width, height) > self.max_side:
            ratio = self.max_side / max(width, height)
            return (max(1, round(height * ratio)), max(1, round(width * ratio)))
        return (height, width)


def unit_float(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Images as the model reads them: uint8 to [0, 1] through float32 (like ToTensor: the same
    values whatever the compute dtype), then the compute dtype; floats only change dtype."""
    if x.dtype == torch.uint8:
        x = x.to(torch.float32).div_(255.0)
    return x.to(dtype)


@dataclass
class BuildContext:
    """Everything a builder may use; `options` holds architecture overrides (tests, benchmarks)."""

    device: torch.device
    dtype: torch.dtype
    weights: Path | None  # the model's weights folder (None for packaged parameters)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class BuiltModel:
    """A ready model: forward maps a batch (N,3,H,W float in [0,1]) to N scores.

    A model that batches images of any size (`ScorerSpec.batches_mixed_sizes`) also has
    `prepare`, which turns images of one size into per-image inputs (MUSIQ: its tokens, with a
    mask; MANIQA: its crops), and `join`, which makes one batch of such inputs from images of
    several sizes (padding them if need be); its forward then takes what `join` (or
    `prepare`) returns."""

    forward: Callable[[torch.Tensor], torch.Tensor]
    module: torch.nn.Module | None = None
    prepare: Callable[[torch.Tensor], torch.Tensor] | None = None
    join: Callable[[list[torch.Tensor]], torch.Tensor] | None = None


@dataclass(frozen=True)
class ScorerSpec:
    """One metric, declared as data; generic code reads these fields and never the name."""

    name: str
    description: str
    lower_better: bool
    score_range: tuple[float, float]
    input_policy: InputPolicy
    build: Callable[[BuildContext], BuiltModel]
    library: str = "pyiqa"  # distribution whose version goes into the scorer version
    weights: str | None = None  # weights spec name, None = parameters ship with packages
    packaged_files: tuple[str, ...] = ()  # parameter files under curation/scoring/scorers/data/
    batchable: bool = True  # a batch of equal-size images gives the per-image results
    # The metric reads only the top-left crop whose sides are multiples of this (NIQE: whole
    # 96-px blocks), so images whose sides round down to the same multiples batch together,
    # cropped, with the per-image results. 1 = only equal shapes batch.
    batch_cell: int = 1
    # Its prepared per-image inputs batch whatever the image size (MUSIQ's tokens, padded and
    # masked; MANIQA's 224 px crops): its builder gives `BuiltModel.prepare` and `join`.
    batches_mixed_sizes: bool = False
    devices: tuple[str, ...] = ("cpu", "cuda")
    compute_dtype: str = "float32"  # "float64" for classical metrics (MATLAB parity)
    half_ok: bool = False  # fp16/bf16 on GPU changes calibration scores negligibly
    # Submodules (dotted names) that stay float32 when the rest runs in half precision: the
    # score head, so scores are not rounded to bf16's 8 significant bits.
    float32_modules: tuple[str, ...] = ()
    default_batch_size: int = 8  # on a GPU, where a batch fills the device
    # On CPU, batch 1 was as fast or faster per image for every full-resolution metric (2-core
    # machine, docs/BENCHMARKS.md): GEMMs already use all cores at batch 1, and bigger batches
    # only add cache misses. None = default_batch_size.
    cpu_batch_size: int | None = None
    supported_options: tuple[str, ...] = ()  # run options it accepts (e.g. "quantize")
    # Its builder's prepare (or forward, without one) takes images as decoded, uint8, and turns
    # only what it reads into floats (MANIQA its crops, NIQE tile by tile): a 100 MP image
    # then never exists as 1.2 GB of floats.
    takes_uint8: bool = False
    # Working memory per input pixel on top of the decoded image (CPU, float32; measured by
    # benchmarks/bench_image_memory.py), for the per-image budget ([decode] image_memory_mb);
    # a metric that works in tiles (`tile_pixels`) needs it only up to that size.
    bytes_per_pixel: float = 64.0
    tile_pixels: int | None = None

    def batch_size(self, device_type: str) -> int:
        """The declared batch size for a device type ("cpu", "cuda")."""
        if device_type == "cpu" and self.cpu_batch_size is not None:
            return self.cpu_batch_size
        return self.default_batch_size

    def batch_shape(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) that images of this shape are cropped to for a batch."""
        cell = self.batch_cell
        return (height // cell * cell, width // cell * cell)

    def working_memory(self, width: int, height: int, orientation: int | None = None) -> int:
        """Bytes that grow with the image while this metric scores it (its input and the
        working set; the decode and the model's own weights are not counted)."""
        out_h, out_w = self.input_policy.output_hw(width, height, orientation)
        pixels = out_h * out_w
        if self.tile_pixels:
            pixels = min(pixels, self.tile_pixels)
        return int(self.bytes_per_pixel * pixels)

    def library_version(self) -> str:
        try:
            return importlib.metadata.version(self.library)
        except importlib.metadata.PackageNotFoundError:
            return "unknown"
