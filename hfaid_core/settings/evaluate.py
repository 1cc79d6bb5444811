"""The [evaluate] config section: the test protocol and metrics of `hfaid evaluate`."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EvaluateConfig:
    # RAP-SR section 4: "the resolution of high-resolution images is set to 512 x 512, while
    # low-resolution images are cropped to 128 x 128"; LR made by the [degrade] section.
    hr_size: int = 512
    scale: int = 4
    seed: int = 0
    shave: int = 4  # px cut from each border before PSNR/SSIM (BasicSR's crop_border = scale)
    metrics: list[str] = field(default_factory=lambda: [
        "psnr", "ssim", "lpips", "maniqa", "musiq", "clipiqa", "brisque", "niqe"])
    baselines: list[str] = field(default_factory=list)  # bicubic | lanczos
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    workers: int = 1  # model processes for the scoring job (CPU: up to the cores)
