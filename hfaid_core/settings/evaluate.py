"""The [evaluate] config section: the test protocol and metrics of `hfaid evaluate`."""

from __future__ import annotations

from dataclasses import dataclass, field

from hfaid_core.settings.ranges import ranged


@dataclass
class EvaluateConfig:
    # RAP-SR section 4: "the resolution of high-resolution images is set to 512 x 512, while
    # low-resolution images are cropped to 128 x 128"; LR made by the [degrade] section.
    hr_size: int = ranged(512, 8)
    scale: int = ranged(4, 1, 16)
    seed: int = ranged(0, 0)
    # px cut from each border before PSNR/SSIM (BasicSR's crop_border = scale)
    shave: int = ranged(4, 0)
    metrics: list[str] = field(default_factory=lambda: [
        "psnr", "ssim", "lpips", "maniqa", "musiq", "clipiqa", "brisque", "niqe"])
    baselines: list[str] = field(default_factory=list)  # bicubic | lanczos
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    workers: int = ranged(1, 1)  # model processes for the scoring job (CPU: up to the cores)
