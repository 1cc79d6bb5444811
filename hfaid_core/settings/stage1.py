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
    # Cuts (absolute values; [clean.pool] replaces any of them with a pool statistic).
    # mean (max - min) over RGB channels, 0-255; at or below = gray
    gray_tolerance: float = ranged(2.0, 0, 255)
    min_short_side: int = ranged(1024, 0)  # px, after EXIF orientation (LSDIR used 2160)
    max_aspect_ratio: float = ranged(2.0, 1)  # long side / short side (LSDIR: 2.0)
    # Laplacian variance at measure_scale / one octave down
    min_detail_ratio: float = ranged(0.25, 0)
    # Laplacian variance at measure_scale; 0 = off (LSDIR: 150 at x4)
    laplacian_min: float = ranged(0.0, 0)
    # above = noisy; inf = off (LSDIR: 8000 at x4)
    laplacian_max: float = ranged(float("inf"), 0)
    max_noise_sigma: float = ranged(8.0, 0)  # full-resolution noise sigma, 0-255 luma units
    # 8x8 block-edge steps over other offsets; clean ~0.8-1.4
    max_blockiness: float = ranged(1.5, 0)
    # 99th-percentile luma; below = too_dark (near-black frame)
    min_luma_p99: float = ranged(40.0, 0, 255)
    # 5th-percentile luma; above = too_bright (washed out)
    max_luma_p05: float = ranged(225.0, 0, 255)
    min_entropy: float = ranged(4.0, 0, 8)  # bits, 256-bin luma histogram; below = low_information
    reject_animated: bool = True  # multi-frame GIF/WebP/PNG
    max_transparent_fraction: float = ranged(0.01, 0, 1)  # share of pixels with alpha < 255
    # Pool-relative cuts: cut name -> "mad K" (median -/+ K robust sigmas of the measured
    # pool, on the measure's scale) or "quantile Q" (the Q share at the failing end).
    pool: dict[str, str] = field(default_factory=dict)


@dataclass
class DedupConfig:
    # Hamming distance between 64-bit pHashes that makes a near-duplicate
    max_distance: int = ranged(6, 0, 31)
    method: str = "phash"  # phash | embedding (`--method`)
    embedding_model: str = "clip-vit-b32"  # `hfaid weights` name of the image encoder
    min_cosine: float = ranged(0.95, 0, 1)  # cosine similarity that makes a near-duplicate
    device: str = "auto"  # auto | cpu | cuda | cuda:N, for the embedding model
    batch_size: int = ranged(32, 1)  # images per embedding forward pass
