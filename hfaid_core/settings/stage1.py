"""[clean] and [dedup] config sections: stage-1 thresholds with their documented defaults."""

from __future__ import annotations

from dataclasses import dataclass, field

from hfaid_core.settings.ranges import ranged


@dataclass
class CleanConfig:
    # larger declared sizes are rejected as decompression bombs
    max_pixels: int = ranged(100_000_000, 1)
    # measurements on the image downscaled by this factor (LSDIR: x4)
    measure_scale: int = ranged(4, 1)
    fast_decode: bool = True  # JPEG: libjpeg DCT-domain scaling instead of decode + Lanczos
    convert_icc: bool = True  # colour-manage ICC-tagged files to sRGB before measuring
    formats: list[str] = field(
        default_factory=lambda: [
            "JPEG", "MPO", "PNG", "WEBP", "TIFF", "BMP", "GIF", "AVIF", "HEIF", "JXL",
        ]
    )  # Pillow format names accepted; anything else is rejected as unsupported_format
    # mean (max - min) over RGB channels, 0-255; at or below = gray
    gray_tolerance: float = ranged(2.0, 0, 255)
    min_short_side: int = ranged(1024, 0)  # px, after EXIF orientation (LSDIR used 2160)
    max_aspect_ratio: float = ranged(2.0, 1)  # long side / short side (LSDIR: 2.0)
    # Laplacian variance of luma at measure_scale; below = blurry
    laplacian_min: float = ranged(150.0, 0)
    laplacian_max: float = ranged(8000.0, 0)  # above = noisy (LSDIR: [150, 8000] at x4)
    min_brightness: float = ranged(20.0, 0, 255)  # mean luma 0-255; below = too_dark
    max_brightness: float = ranged(235.0, 0, 255)  # mean luma 0-255; above = too_bright
    min_entropy: float = ranged(4.0, 0, 8)  # bits, 256-bin luma histogram; below = low_information
    reject_animated: bool = True  # multi-frame GIF/WebP/PNG
    max_transparent_fraction: float = ranged(0.01, 0, 1)  # share of pixels with alpha < 255


@dataclass
class DedupConfig:
    # Hamming distance between 64-bit pHashes that makes a near-duplicate
    max_distance: int = ranged(6, 0, 31)
