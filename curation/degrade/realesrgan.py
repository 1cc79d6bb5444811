"""Real-ESRGAN second-order degradation (numpy/OpenCV, seedable) and its binned text description."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import cv2
import numpy as np
from scipy import special

from hfaid_core.settings.degrade import KERNEL_TYPES, DegradationConfig

__all__ = [
    "KERNEL_TYPES", "DegradationConfig", "apply_degradation", "degrade", "describe_degradation",
    "sample_degradation", "severities", "sinc_kernel",
]

RESIZE_MODES = ["area", "bilinear", "bicubic"]
_CV2_MODES = {"area": cv2.INTER_AREA, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}
_GRAY = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # RGB weights, as torchvision uses


# ---- kernels (BasicSR degradations.py, same formulas) -------------------------------------


def _grid(size: int) -> np.ndarray:
    ax = np.arange(-size // 2 + 1.0, size // 2 + 1.0)
    xx, yy = np.meshgrid(ax, ax)
    return np.stack([xx, yy], axis=-1)


def _quad_form(size: int, sig_x: float, sig_y: float, theta: float) -> np.ndarray:
    """x^T Sigma^-1 x on the kernel grid, Sigma rotated by theta."""
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    sigma = rot @ np.diag([sig_x**2, sig_y**2]) @ rot.T
    grid = _grid(size)
    return np.sum((grid @ np.linalg.inv(sigma)) * grid, axis=2)


def mixed_kernel(kind: str, size: int, sig_x: float, sig_y: float, theta: float,
                 beta: float) -> np.ndarray:
    """One of the six Gaussian-family kernels, normalised to sum 1."""
    q = _quad_form(size, sig_x, sig_y, theta)
    if kind in ("iso", "aniso"):
        k = np.exp(-0.5 * q)
    elif kind.startswith("generalized"):
        k = np.exp(-0.5 * np.power(q, beta))
    else:  # plateau
        k = np.reciprocal(np.power(q, beta) + 1)
    return k / np.sum(k)


def sinc_kernel(cutoff: float, size: int, pad_to: int = 0) -> np.ndarray:
    """2-D circular low-pass (sinc) kernel with cutoff omega_c, optionally zero-padded."""
    c = (size - 1) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.hypot(*np.meshgrid(np.arange(size) - c, np.arange(size) - c, indexing="ij"))
        k = cutoff * special.j1(cutoff * r) / (2 * np.pi * r)
    k[(size - 1) // 2, (size - 1) // 2] = cutoff**2 / (4 * np.pi)
    k = k / np.sum(k)
    if pad_to > size:
        p = (pad_to - size) // 2
        k = np.pad(k, ((p, p), (p, p)))
    return k


def _draw_beta(rng: np.random.Generator, lo: float, hi: float) -> float:
    # BasicSR: half the mass below 1, half above (plateau's [1, 2] gives beta = 1 half the time)
    return float(rng.uniform(lo, 1) if rng.uniform() < 0.5 else rng.uniform(1, hi))


def _draw_kernel(rng: np.random.Generator, cfg: DegradationConfig, second: bool
                 ) -> dict[str, Any]:
    size = int(rng.choice(cfg.kernel_sizes))
    sinc_p, probs, sig, bg, bp = (
        (cfg.sinc_prob2, cfg.kernel_prob2, cfg.blur_sigma2, cfg.betag_range2, cfg.betap_range2)
        if second else (cfg.sinc_prob, cfg.kernel_prob, cfg.blur_sigma, cfg.betag_range,
                        cfg.betap_range)
    )
    if rng.uniform() < sinc_p:
        # BasicSR's cutoff range depends on the kernel size (small kernels: mild sinc only)
        omega = float(rng.uniform(np.pi / 3, np.pi) if size < 13 else rng.uniform(np.pi / 5, np.pi))
        return {"type": "sinc", "size": size, "omega_c": omega}
    kind = str(rng.choice(cfg.kernel_types, p=_norm(probs)))
    sig_x = float(rng.uniform(*sig))
    sig_y, theta = sig_x, 0.0
    if kind.endswith("aniso"):
        sig_y = float(rng.uniform(*sig))
        theta = float(rng.uniform(-np.pi, np.pi))
    beta = 1.0
    if kind.startswith("generalized"):
        beta = _draw_beta(rng, *bg)
    elif kind.startswith("plateau"):
        beta = _draw_beta(rng, *bp)
    return {"type": kind, "size": size, "sigma_x": sig_x, "sigma_y": sig_y, "theta": theta,
            "beta": beta}


def _kernel(p: dict[str, Any]) -> np.ndarray:
    """The kernel a drawn parameter set describes (zero-padding to 21 does not change a filter)."""
    if p["type"] == "sinc":
        return sinc_kernel(p["omega_c"], p["size"])
    return mixed_kernel(p["type"], p["size"], p["sigma_x"], p["sigma_y"], p["theta"], p["beta"])


def _norm(p: list[float]) -> np.ndarray:
    a = np.asarray(p, dtype=np.float64)
    return a / a.sum()


# ---- image operations (float32 RGB in [0, 1]) ---------------------------------------------


def _filter(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    # BORDER_REFLECT_101 is torch's 'reflect' padding, which BasicSR's filter2D uses
    return cv2.filter2D(img, -1, kernel.astype(np.float32), borderType=cv2.BORDER_REFLECT_101)


def usm_sharp(img: np.ndarray, weight: float = 0.5, radius: int = 50,
              threshold: int = 10) -> np.ndarray:
    """Unsharp masking with a soft mask, as BasicSR's usm_sharp."""
    radius += 1 - radius % 2
    blur = cv2.GaussianBlur(img, (radius, radius), 0)
    residual = img - blur
    mask = (np.abs(residual) * 255 > threshold).astype(np.float32)
    soft = cv2.GaussianBlur(mask, (radius, radius), 0)
    sharp = np.clip(img + weight * residual, 0, 1)
    return soft * sharp + (1 - soft) * img


def _resize(img: np.ndarray, h: int, w: int, mode: str) -> np.ndarray:
    out = cv2.resize(img, (max(1, w), max(1, h)), interpolation=_CV2_MODES[mode])
    return out if out.ndim == 3 else out[..., None]


def _draw_noise(rng: np.random.Generator, gaussian_prob: float, sigma_range: list[float],
                scale_range: list[float], gray_prob: float) -> dict[str, Any]:
    if rng.uniform() < gaussian_prob:
        sigma = float(rng.uniform(*sigma_range))
        return {"kind": "gaussian", "sigma": sigma, "gray": bool(rng.uniform() < gray_prob)}
    scale = float(rng.uniform(*scale_range))
    return {"kind": "poisson", "scale": scale, "gray": bool(rng.uniform() < gray_prob)}


def _add_noise(img: np.ndarray, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    h, w, _ = img.shape
    if p["kind"] == "gaussian":
        shape = (h, w, 1) if p["gray"] else (h, w, 3)
        # a (h, w, 1) gray noise field broadcasts to all three channels
        out = img + rng.standard_normal(shape).astype(np.float32) * (p["sigma"] / 255.0)
    else:
        src = (img @ _GRAY)[..., None] if p["gray"] else img
        # BasicSR rounds to 8 bits and scales counts by the next power of two of the
        # number of distinct values
        src = np.clip(np.round(src * 255.0), 0, 255) / 255.0
        vals = 2 ** math.ceil(math.log2(max(len(np.unique(src)), 1)))
        noise = (rng.poisson(src * vals) / vals - src).astype(np.float32)
        out = img + noise * p["scale"]
    return np.clip(out, 0, 1).astype(np.float32)


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    u8 = np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(u8, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - OpenCV only fails on empty images
        raise ValueError("JPEG encoding failed")
    dec = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return dec.astype(np.float32) / 255.0


def _updown(rng: np.random.Generator, probs: list[float], rng_range: list[float]
            ) -> dict[str, Any]:
    kind = str(rng.choice(["up", "down", "keep"], p=_norm(probs)))
    if kind == "up":
        factor = float(rng.uniform(1, rng_range[1]))
    elif kind == "down":
        factor = float(rng.uniform(rng_range[0], 1))
    else:
        factor = 1.0
    return {"kind": kind, "factor": factor, "mode": str(rng.choice(RESIZE_MODES))}


def _quality(rng: np.random.Generator, q_range: list[float]) -> int:
    # DiffJPEG takes a float quality; OpenCV needs an integer, so round the draw
    return int(round(float(rng.uniform(*q_range))))


# ---- the pipeline -------------------------------------------------------------------------


def sample_degradation(rng: np.random.Generator, height: int, width: int, scale: int = 4,
                       config: DegradationConfig | None = None) -> dict[str, Any]:
    """Draw every random parameter of one degradation (no pixels touched; JSON-serialisable).

    Separate from the pixel work so that parameter distributions can be checked on many
    samples cheaply and a recorded parameter set can be replayed.
    """
    cfg = config or DegradationConfig()
    p1 = _draw_kernel(rng, cfg, second=False)
    p2 = _draw_kernel(rng, cfg, second=True)
    final_sinc = None  # None is BasicSR's pulse kernel: identity
    if rng.uniform() < cfg.final_sinc_prob:
        final_sinc = {"size": int(rng.choice(cfg.kernel_sizes)),
                      "omega_c": float(rng.uniform(np.pi / 3, np.pi))}
    params: dict[str, Any] = {
        "scale": scale, "input_size": [height, width], "usm_sharpen": cfg.usm_sharpen,
        "kernel1": p1, "kernel2": p2, "final_sinc": final_sinc,
    }
    params["resize1"] = _updown(rng, cfg.resize_prob, cfg.resize_range)
    params["noise1"] = _draw_noise(rng, cfg.gaussian_noise_prob, cfg.noise_range,
                                   cfg.poisson_scale_range, cfg.gray_noise_prob)
    params["jpeg1"] = _quality(rng, cfg.jpeg_range)
    params["blur2"] = bool(rng.uniform() < cfg.second_blur_prob)
    params["resize2"] = _updown(rng, cfg.resize_prob2, cfg.resize_range2)
    params["noise2"] = _draw_noise(rng, cfg.gaussian_noise_prob2, cfg.noise_range2,
                                   cfg.poisson_scale_range2, cfg.gray_noise_prob2)
    sinc_first = bool(rng.uniform() < 0.5)
    params["final"] = {"order": "sinc_then_jpeg" if sinc_first else "jpeg_then_sinc",
                       "mode": str(rng.choice(RESIZE_MODES)),
                       "jpeg": _quality(rng, cfg.jpeg_range2)}
    return params


def apply_degradation(image: np.ndarray, params: dict[str, Any],
                      rng: np.random.Generator) -> np.ndarray:
    """Run the drawn parameters over an HxWx3 uint8 RGB image (rng feeds the noise fields)."""
    ori_h, ori_w = image.shape[:2]
    scale = params["scale"]
    out_h, out_w = max(1, ori_h // scale), max(1, ori_w // scale)
    img = image.astype(np.float32) / 255.0
    if params["usm_sharpen"]:
        img = usm_sharp(img)

    # first order: blur, resize relative to the current size, noise, JPEG
    img = _filter(img, _kernel(params["kernel1"]))
    r = params["resize1"]
    h, w = img.shape[:2]
    img = _resize(img, int(h * r["factor"]), int(w * r["factor"]), r["mode"])
    img = _add_noise(img, params["noise1"], rng)
    img = _jpeg(img, params["jpeg1"])

    # second order: optional blur, resize relative to the target size, noise
    if params["blur2"]:
        img = _filter(img, _kernel(params["kernel2"]))
    r = params["resize2"]
    img = _resize(img, int(ori_h / scale * r["factor"]), int(ori_w / scale * r["factor"]),
                  r["mode"])
    img = _add_noise(img, params["noise2"], rng)

    # final: 50/50 (resize + sinc, then JPEG) or (JPEG, then resize + sinc)
    fin, sinc = params["final"], params["final_sinc"]
    if fin["order"] == "sinc_then_jpeg":
        img = _resize(img, out_h, out_w, fin["mode"])
        if sinc is not None:
            img = _filter(img, sinc_kernel(sinc["omega_c"], sinc["size"]))
        img = _jpeg(np.clip(img, 0, 1), fin["jpeg"])
    else:
        img = _jpeg(np.clip(img, 0, 1), fin["jpeg"])
        img = _resize(img, out_h, out_w, fin["mode"])
        if sinc is not None:
            img = _filter(img, sinc_kernel(sinc["omega_c"], sinc["size"]))
    lr = np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(lr)


def degrade(image: np.ndarray, rng: np.random.Generator, scale: int = 4,
            config: DegradationConfig | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Degrade an HxWx3 uint8 RGB image to about H/scale x W/scale; return it and the draws."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB array, got {image.shape} {image.dtype}")
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    params = sample_degradation(rng, image.shape[0], image.shape[1], scale, config)
    return apply_degradation(image, params, rng), params


# ---- text description (PromptSR / DaLPSR style) -------------------------------------------

LEVELS = ("light", "medium", "heavy")


def _level(x: float) -> str:
    """Thirds of a severity normalised to [0, 1]."""
    return LEVELS[min(2, max(0, int(x * 3)))]


def _frac(v: float, lo: float, hi: float) -> float:
    return (v - lo) / (hi - lo) if hi > lo else 0.0


def severities(params: dict[str, Any], config: DegradationConfig | None = None
               ) -> dict[str, float]:
    """Blur, noise and compression severities in [0, 1] (position within the drawn range).

    blur: the strongest applied kernel (Gaussian-family: mean sigma within its sigma range;
    sinc: how far omega_c sits below pi). noise: the stronger of the two noise rounds
    (Gaussian sigma or Poisson scale within its range). compression: the lowest JPEG quality
    (lower quality = heavier), within the JPEG range.
    """
    cfg = config or DegradationConfig()

    def blur(k: dict[str, Any], sig: list[float]) -> float:
        if k["type"] == "sinc":
            return _frac(np.pi - k["omega_c"], 0.0, np.pi - np.pi / 5)
        return _frac((k["sigma_x"] + k["sigma_y"]) / 2, *sig)

    blurs = [blur(params["kernel1"], cfg.blur_sigma)]
    if params.get("blur2"):
        blurs.append(blur(params["kernel2"], cfg.blur_sigma2))

    def noise(n: dict[str, Any], sig: list[float], sc: list[float]) -> float:
        return _frac(n["sigma"], *sig) if n["kind"] == "gaussian" else _frac(n["scale"], *sc)

    noises = [noise(params["noise1"], cfg.noise_range, cfg.poisson_scale_range),
              noise(params["noise2"], cfg.noise_range2, cfg.poisson_scale_range2)]
    q = min(params["jpeg1"], params["final"]["jpeg"])
    lo, hi = min(cfg.jpeg_range[0], cfg.jpeg_range2[0]), max(cfg.jpeg_range[1], cfg.jpeg_range2[1])
    return {"blur": min(1.0, max(blurs)), "noise": min(1.0, max(noises)),
            "compression": min(1.0, _frac(hi - q, 0.0, hi - lo))}


def describe_degradation(params: dict[str, Any], config: DegradationConfig | None = None) -> str:
    """Binned description such as "light blur, medium noise, heavy compression"."""
    s = severities(params, config)
    return ", ".join(f"{_level(s[name])} {name}" for name in ("blur", "noise", "compression"))


def config_dict(config: DegradationConfig | None = None) -> dict[str, Any]:
    """The configuration as a JSON-serialisable dict (recorded in export manifests)."""
    return asdict(config or DegradationConfig())
