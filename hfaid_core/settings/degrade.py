"""The [degrade] config section: Real-ESRGAN second-order degradation parameters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hfaid_core.settings.ranges import ranged

# Defaults are the published Real-ESRGAN x4plus training options
# (options/train_realesrgan_x4plus.yml + realesrgan_dataset.py / realesrgan_model.py in BasicSR).
KERNEL_TYPES = [
    "iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso",
]


def _list(*values: float) -> Any:
    return field(default_factory=lambda: list(values))


@dataclass
class DegradationConfig:
    kernel_sizes: list[int] = _list(7, 9, 11, 13, 15, 17, 19, 21)  # odd, padded to 21
    kernel_types: list[str] = field(default_factory=lambda: list(KERNEL_TYPES))
    kernel_prob: list[float] = _list(0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob: float = ranged(0.1, 0, 1)
    blur_sigma: list[float] = _list(0.2, 3.0)
    betag_range: list[float] = _list(0.5, 4.0)
    betap_range: list[float] = _list(1.0, 2.0)
    kernel_prob2: list[float] = _list(0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob2: float = ranged(0.1, 0, 1)
    blur_sigma2: list[float] = _list(0.2, 1.5)
    betag_range2: list[float] = _list(0.5, 4.0)
    betap_range2: list[float] = _list(1.0, 2.0)
    final_sinc_prob: float = ranged(0.8, 0, 1)
    usm_sharpen: bool = True  # Real-ESRGAN degrades the USM-sharpened ground truth
    resize_prob: list[float] = _list(0.2, 0.7, 0.1)  # up, down, keep
    resize_range: list[float] = _list(0.15, 1.5)
    gaussian_noise_prob: float = ranged(0.5, 0, 1)
    noise_range: list[float] = _list(1.0, 30.0)
    poisson_scale_range: list[float] = _list(0.05, 3.0)
    gray_noise_prob: float = ranged(0.4, 0, 1)
    jpeg_range: list[float] = _list(30.0, 95.0)
    second_blur_prob: float = ranged(0.8, 0, 1)
    resize_prob2: list[float] = _list(0.3, 0.4, 0.3)
    resize_range2: list[float] = _list(0.3, 1.2)
    gaussian_noise_prob2: float = ranged(0.5, 0, 1)
    noise_range2: list[float] = _list(1.0, 25.0)
    poisson_scale_range2: list[float] = _list(0.05, 2.5)
    gray_noise_prob2: float = ranged(0.4, 0, 1)
    jpeg_range2: list[float] = _list(30.0, 95.0)
