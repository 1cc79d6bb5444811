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
    # Cuts (absolute values; [clean.pool] replaces any of them with a pool statistic).
    gray_tolerance: float = 2.0  # mean (max - min) over RGB channels, 0-255; at or below = gray
    min_short_side: int = 1024  # px, after EXIF orientation (LSDIR used 2160)
    max_aspect_ratio: float = 2.0  # long side / short side (LSDIR: 2.0)
    min_detail_ratio: float = 0.25  # Laplacian variance at measure_scale / one octave down
    laplacian_min: float = 0.0  # Laplacian variance at measure_scale; 0 = off (LSDIR: 150 at x4)
    laplacian_max: float = float("inf")  # above = noisy; inf = off (LSDIR: 8000 at x4)
    max_noise_sigma: float = 8.0  # full-resolution noise sigma, 0-255 luma units
    max_blockiness: float = 1.5  # 8x8 block-edge steps over other offsets; clean ~0.8-1.4
    min_luma_p99: float = 40.0  # 99th-percentile luma; below = too_dark (near-black frame)
    max_luma_p05: float = 225.0  # 5th-percentile luma; above = too_bright (washed out)
    min_entropy: float = 4.0  # bits, 256-bin luma histogram; below = low_information
    reject_animated: bool = True  # multi-frame GIF/WebP/PNG
    max_transparent_fraction: float = 0.01  # share of pixels with alpha < 255
    # Pool-relative cuts: cut name -> "mad K" (median -/+ K robust sigmas of the measured
    # pool, on the measure's scale) or "quantile Q" (the Q share at the failing end).
    pool: dict[str, str] = field(default_factory=dict)


@dataclass
class DedupConfig:
    max_distance: int = 6  # Hamming distance between 64-bit pHashes that makes a near-duplicate
    method: str = "phash"  # phash | embedding (`--method`)
    embedding_model: str = "clip-vit-b32"  # `hfaid weights` name of the image encoder
    min_cosine: float = 0.95  # cosine similarity of embeddings that makes a near-duplicate
    device: str = "auto"  # auto | cpu | cuda | cuda:N, for the embedding model
    batch_size: int = 32  # images per embedding forward pass
