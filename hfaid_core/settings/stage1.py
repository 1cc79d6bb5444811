"""[clean] and [dedup] config sections: stage-1 thresholds with their documented defaults."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CleanConfig:
    max_pixels: int = 100_000_000  # larger declared sizes are rejected as decompression bombs
    measure_scale: int = 4  # measurements on the image downscaled by this factor (LSDIR: x4)
    fast_decode: bool = True  # JPEG: libjpeg DCT-domain scaling instead of decode + Lanczos
    convert_icc: bool = True  # colour-manage ICC-tagged files to sRGB before measuring
    formats: list[str] = field(
        default_factory=lambda: ["JPEG", "MPO", "PNG", "WEBP", "TIFF", "BMP", "GIF"]
    )  # Pillow format names accepted; anything else is rejected as unsupported_format
    gray_tolerance: float = 2.0  # mean (max - min) over RGB channels, 0-255; at or below = gray
    min_short_side: int = 1024  # px, after EXIF orientation (LSDIR used 2160)
    max_aspect_ratio: float = 2.0  # long side / short side (LSDIR: 2.0)
    laplacian_min: float = 150.0  # Laplacian variance of luma at measure_scale; below = blurry
    laplacian_max: float = 8000.0  # above = noisy (LSDIR: [150, 8000] at x4)
    min_brightness: float = 20.0  # mean luma 0-255; below = too_dark
    max_brightness: float = 235.0  # mean luma 0-255; above = too_bright
    min_entropy: float = 4.0  # bits, 256-bin luma histogram; below = low_information
    reject_animated: bool = True  # multi-frame GIF/WebP/PNG
    max_transparent_fraction: float = 0.01  # share of pixels with alpha < 255


@dataclass
class DedupConfig:
    max_distance: int = 6  # Hamming distance between 64-bit pHashes that makes a near-duplicate
