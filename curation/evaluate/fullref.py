"""Full-reference metrics on (SR, HR) pairs: PSNR and SSIM on Y (float64, batched), LPIPS."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from hfaid_core.weights import WeightSpec, fingerprint, register_weights, require_weights

# Bumped when a formula here changes: scores of another implementation are never reused.
IMPLEMENTATION = "1"
LPIPS_FILE = "LPIPS_v0.1_alex-df73285e.pth"  # pyiqa's release of LPIPS v0.1 (AlexNet) layers
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"  # torchvision's ImageNet AlexNet (features used)
SSIM_WINDOW, SSIM_SIGMA = 11, 1.5  # Wang et al. 2004, as BasicSR, pyiqa and scikit-image
# AlexNet `features` index -> LPIPS slice: pyiqa's lpips_arch.alexnet splits them 2/3/3/2/2.
_ALEX_SLICES = (1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 5, 5)

PairMetric = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (N,H,W,3) uint8 SR, HR -> (N,)


@dataclass(frozen=True)
class FullRefSpec:
    """A metric of an SR image against its HR reference, as data (like `ScorerSpec`)."""

    name: str
    description: str
    lower_better: bool
    build: Callable[[torch.device, Path | None, int], PairMetric]  # (device, weights, shave)
    weights: str | None = None  # weights spec name; None = nothing to load
    uses_shave: bool = False
    infinite_ok: bool = False  # +inf is a result (PSNR of an exact copy), not an error


def y_channel(x: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) RGB in 0..255 -> (N, H, W) float64 luma of YCbCr, ITU-R BT.601 studio
    range (16..235): what MATLAB's rgb2ycbcr, BasicSR's `test_y_channel` and scikit-image's
    rgb2ycbcr compute. Not rounded."""
    x = x.astype(np.float64)
    return 16.0 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255.0


def shave(y: np.ndarray, pixels: int) -> np.ndarray:
    """The border of `pixels` removed on every side (BasicSR's `crop_border`)."""
    return y[..., pixels:-pixels, pixels:-pixels] if pixels > 0 else y


def psnr_y(sr: np.ndarray, hr: np.ndarray, pixels: int) -> np.ndarray:
    """PSNR (dB) on Y with a peak of 255, per image; identical images give +inf."""
    diff = shave(y_channel(sr) - y_channel(hr), pixels)
    mse = np.mean(diff * diff, axis=(-2, -1))
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(255.0**2 / mse)


@cache
def _gaussian(window: int, sigma: float) -> np.ndarray:
    ax = np.arange(window, dtype=np.float64) - (window - 1) / 2
    kernel = np.exp(-0.5 * (ax / sigma) ** 2)
    return kernel / kernel.sum()


def _blur_valid(x: np.ndarray) -> np.ndarray:
    """Separable Gaussian over the last two axes, kept where the window fits ("valid").
    scipy.ndimage in float64: 10x faster than torch's float64 convolutions on CPU."""
    from scipy import ndimage

    g, r = _gaussian(SSIM_WINDOW, SSIM_SIGMA), SSIM_WINDOW // 2
    x = ndimage.correlate1d(x, g, axis=-1, mode="reflect")[..., r:-r]
    return ndimage.correlate1d(x, g, axis=-2, mode="reflect")[..., r:-r, :]


def ssim_y(sr: np.ndarray, hr: np.ndarray, pixels: int) -> np.ndarray:
    """Mean SSIM on Y per image: 11x11 Gaussian window (sigma 1.5), K1 0.01, K2 0.03, data
    range 255, over the positions where the window fits, after the border shave."""
    a, b = shave(y_channel(sr), pixels), shave(y_channel(hr), pixels)
    mu_a, mu_b = _blur_valid(a), _blur_valid(b)
    var_a = _blur_valid(a * a) - mu_a**2
    var_b = _blur_valid(b * b) - mu_b**2
    cov = _blur_valid(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return ssim_map.mean(axis=(-2, -1))


def _build_psnr(device: torch.device, weights: Path | None, pixels: int) -> PairMetric:
    return lambda sr, hr: psnr_y(sr, hr, pixels)


def _build_ssim(device: torch.device, weights: Path | None, pixels: int) -> PairMetric:
    return lambda sr, hr: ssim_y(sr, hr, pixels)


@contextmanager
def alexnet_without_download() -> Iterator[None]:
    """pyiqa's LPIPS asks torchvision for ImageNet AlexNet weights (a download) whatever its
    flags: build an untrained one instead; the weights come from the registry's files."""
    from pyiqa.archs import lpips_arch

    original = lpips_arch.models.alexnet
    with mock.patch.object(lpips_arch.models, "alexnet",
                           lambda *args, **kwargs: original(weights=None)):
        yield


def lpips_network() -> torch.nn.Module:
    """pyiqa's LPIPS v0.1 on AlexNet, untrained (its `lpips` metric's architecture)."""
    from pyiqa.archs.lpips_arch import LPIPS

    with alexnet_without_download():
        return LPIPS(pretrained=False, net="alex", version="0.1", pnet_rand=True)


def _build_lpips(device: torch.device, weights: Path | None, pixels: int) -> PairMetric:
    from pyiqa.archs.arch_util import load_pretrained_network

    net = lpips_network()
    alex = torch.load(weights / ALEXNET_FILE, map_location="cpu", weights_only=True)
    net.net.load_state_dict({f"slice{_ALEX_SLICES[int(k.split('.')[1])]}.{k.split('.', 1)[1]}":
                             v for k, v in alex.items()
                             if k.startswith("features.") and int(k.split(".")[1]) < 12})
    # pyiqa's own loading of its release file (non-strict: it holds the linear layers).
    load_pretrained_network(net, str(weights / LPIPS_FILE), False)
    net = net.to(device).eval()

    def forward(sr: np.ndarray, hr: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(sr).permute(0, 3, 1, 2).to(device, torch.float32) / 255.0
            y = torch.from_numpy(hr).permute(0, 3, 1, 2).to(device, torch.float32) / 255.0
            return net(x, y, normalize=True).reshape(-1).double().cpu().numpy()

    return forward


def fetch_lpips(dest: Path) -> None:
    from curation.scoring.scorers.pyiqa_models import _download, _pyiqa_url

    _download({LPIPS_FILE: _pyiqa_url(LPIPS_FILE),
               ALEXNET_FILE: f"https://download.pytorch.org/models/{ALEXNET_FILE}"}, dest)


def write_random_lpips(folder: Path, seed: int = 0) -> Path:
    """Random LPIPS files in the real layout (AlexNet `features.*` only: all the loader reads),
    for offline tests; returns the weights root to pass as weights_dir."""
    torch.manual_seed(seed)
    net = lpips_network()
    target = Path(folder) / "lpips"
    target.mkdir(parents=True, exist_ok=True)
    features = {}
    for key, value in net.net.state_dict().items():  # slice2.3.weight -> features.3.weight
        features[f"features.{key.split('.', 1)[1]}"] = value
    torch.save(features, target / ALEXNET_FILE)
    # LPIPS's linear layers are trained non-negative (a distance): keep random ones so too.
    torch.save({k: v.abs() for k, v in net.state_dict().items() if k.startswith("lin")},
               target / LPIPS_FILE)
    return Path(folder)


FULL_REFERENCE: dict[str, FullRefSpec] = {
    spec.name: spec for spec in (
        FullRefSpec("psnr", "PSNR on Y (BT.601), peak 255", False, _build_psnr, uses_shave=True,
                    infinite_ok=True),
        FullRefSpec("ssim", "SSIM on Y (BT.601), 11x11 Gaussian sigma 1.5", False, _build_ssim,
                    uses_shave=True),
        FullRefSpec("lpips", "LPIPS v0.1, AlexNet (pyiqa's lpips)", True, _build_lpips,
                    weights="lpips"),
    )
}


def fullref_version(name: str, shave_pixels: int, weights_root: Path | str | None) -> str:
    """What a stored score was computed with: implementation, shave, or library + weights.
    Missing weights raise the registry's one-line error (naming `hfaid weights fetch`)."""
    spec = FULL_REFERENCE[name]
    if spec.weights is None:
        return f"hfaid{IMPLEMENTATION}+y601+shave{shave_pixels}"
    import importlib.metadata

    from hfaid_core.weights import get_spec

    folder = require_weights(spec.weights, weights_root)
    files = [folder / f for f in get_spec(spec.weights).files]
    return f"pyiqa-{importlib.metadata.version('pyiqa')}+{fingerprint(files)}"


def build_fullref(name: str, device: str | torch.device, shave_pixels: int,
                  weights_root: Path | str | None) -> PairMetric:
    spec = FULL_REFERENCE[name]
    folder = require_weights(spec.weights, weights_root) if spec.weights else None
    return spec.build(torch.device(device), folder, shave_pixels)


register_weights(WeightSpec("lpips", [LPIPS_FILE, ALEXNET_FILE], fetch_lpips,
                            "LPIPS v0.1 linear layers (pyiqa) + torchvision AlexNet"))
