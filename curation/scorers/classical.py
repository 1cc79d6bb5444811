"""NIQE and BRISQUE with the reference parameters vendored in curation/scorers/data (offline)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import torch

from curation.scorers.base import BuildContext, BuiltModel, InputPolicy, ScorerSpec

DATA_DIR = Path(__file__).parent / "data"
NIQE_PARAMS = "niqe_pris_params.npz"  # basicsr 1.4.2 (Apache-2.0): MATLAB NIQE pristine model
BRISQUE_MODEL = "brisque_live_allmodel.txt"  # LIVE BRISQUE release's libsvm `allmodel`
NIQE_BLOCK = 96  # pyiqa's (and MATLAB's) NIQE block side


@cache
def niqe_params() -> tuple[torch.Tensor, torch.Tensor]:
    params = np.load(DATA_DIR / NIQE_PARAMS)
    return (
        torch.from_numpy(np.ravel(params["mu_pris_param"])),
        torch.from_numpy(params["cov_pris_param"]),
    )


@cache
def brisque_model() -> dict:
    """Parse a libsvm epsilon-SVR model: header values, coefficients, support vectors."""
    lines = (DATA_DIR / BRISQUE_MODEL).read_text().splitlines()
    split = lines.index("SV")
    header = dict(line.split(" ", 1) for line in lines[:split])
    coef, vectors = [], []
    for line in lines[split + 1 :]:
        parts = line.split()
        if not parts:
            continue
        coef.append(float(parts[0]))
        row = np.zeros(36)
        for pair in parts[1:]:
            index, value = pair.split(":")
            row[int(index) - 1] = float(value)
        vectors.append(row)
    return {
        "gamma": float(header["gamma"]),
        "rho": float(header["rho"]),
        "sv_coef": torch.tensor(coef, dtype=torch.float64),
        "sv": torch.from_numpy(np.stack(vectors)),
    }


def gauss_filter(img: torch.Tensor, kernel: torch.Tensor, padding: str) -> torch.Tensor:
    """pyiqa's `imfilter` (pad, then correlate) as 49 shifted multiply-adds.

    float64 conv2d on CPU has no fast kernel (im2col + GEMM: ~20x slower here), and NIQE's two
    7x7 Gaussian filters per scale were ~70% of its time. The same kernel values, summed tap by
    tap, gave bit-identical results to pyiqa's conv on the benchmark images (max diff 0).
    """
    from pyiqa.matlab_utils import exact_padding_2d

    kh, kw = kernel.shape[-2:]
    padded = exact_padding_2d(img, (kh, kw), mode=padding)
    h, w = img.shape[-2:]
    taps = kernel.reshape(kh, kw).tolist()
    out = torch.zeros_like(img)
    for i in range(kh):
        for j in range(kw):
            if taps[i][j]:
                out.add_(padded[..., i : i + h, j : j + w], alpha=taps[i][j])
    return out


def normalize_with_gauss(img: torch.Tensor, padding: str) -> torch.Tensor:
    """pyiqa's `normalize_img_with_gauss` (7x7, sigma 7/6, C=1) on `gauss_filter`."""
    from pyiqa.archs.func_util import safe_sqrt
    from pyiqa.matlab_utils import fspecial

    kernel = fspecial(7, 7.0 / 6, 1).to(img)
    mu = gauss_filter(img, kernel, padding)
    std = gauss_filter(img**2, kernel, padding)
    sigma = safe_sqrt((std - mu**2).abs())
    return (img - mu) / (sigma + 1)


@cache
def aggd_grid(dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """pyiqa's AGGD shape grid (gamma 0.2..10 in steps of 0.001, made the same way: float32
    arange, then cast) and its ratio r(gamma), computed once instead of on every call; and
    whether r rises strictly along the grid, which lets a binary search find the nearest."""
    gam = torch.arange(0.2, 10 + 0.001, 0.001).to(dtype=dtype, device=device)
    r_gam = (
        2 * torch.lgamma(2.0 / gam) - (torch.lgamma(1.0 / gam) + torch.lgamma(3.0 / gam))
    ).exp()
    return gam, r_gam, bool((r_gam[1:] > r_gam[:-1]).all())


def nearest_on_grid(r_gam: torch.Tensor, x: torch.Tensor, increasing: bool) -> torch.Tensor:
    """(r_gam - x).abs().argmin(-1) for x of shape (b, 1), as pyiqa computes it over the whole
    grid for every block (b x 9801). On a strictly rising grid the nearest value is next to
    x's sorted position: the same distances over a window of 4 around it give the same first
    minimum. Non-finite x (a flat block's 0/0) gives index 0, as argmin over NaNs does."""
    if not increasing:
        return (r_gam.repeat(x.shape[0], 1) - x).abs().argmin(dim=-1)
    window = torch.searchsorted(r_gam, x) + torch.arange(-2, 2, device=x.device)
    window = window.clamp(0, r_gam.numel() - 1)
    position = window.gather(-1, (r_gam[window] - x).abs().argmin(dim=-1, keepdim=True))
    return torch.where(torch.isfinite(x), position, 0).squeeze(-1)


def estimate_aggd(block: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """pyiqa 0.1.16 `estimate_aggd_param`, bit for bit: the grid comes from `aggd_grid`, the
    nearest grid point from `nearest_on_grid`, and block**2 is computed once ((b*m)**2 equals
    b**2*m for a 0/1 mask m, so the sums are the same)."""
    gam, r_gam, increasing = aggd_grid(block.dtype, block.device)
    mask_left = block < 0
    mask_right = block > 0
    count_left = mask_left.sum(dim=(-1, -2), dtype=torch.float32)
    count_right = mask_right.sum(dim=(-1, -2), dtype=torch.float32)
    squared = block.pow(2)
    left_std = torch.sqrt((squared * mask_left).sum(dim=(-1, -2)) / count_left)
    right_std = torch.sqrt((squared * mask_right).sum(dim=(-1, -2)) / count_right)
    gammahat = left_std / right_std
    rhat = block.abs().mean(dim=(-1, -2)).pow(2) / squared.mean(dim=(-1, -2))
    rhatnorm = (rhat * (gammahat.pow(3) + 1) * (gammahat + 1)) / (gammahat.pow(2) + 1).pow(2)
    alpha = gam[nearest_on_grid(r_gam, rhatnorm, increasing)]
    scale = (torch.lgamma(1 / alpha) - torch.lgamma(3 / alpha)).exp().sqrt()
    return alpha, left_std.squeeze(-1) * scale, right_std.squeeze(-1) * scale


def niqe_block_features(block: torch.Tensor, _args: object = None) -> torch.Tensor:
    """pyiqa 0.1.16 niqe_arch `compute_feature` (NIQE, not IL-NIQE) on `estimate_aggd`: 18
    features per block. pyiqa recomputed the shape grid and searched all of it for every
    block, five times per scale: half of NIQE's time at 1080x800."""
    bsz = block.shape[0]
    aggd_block = block[:, [0]]
    alpha, beta_l, beta_r = estimate_aggd(aggd_block)
    features = [alpha, (beta_l + beta_r) / 2]
    for shift in ([0, 1], [1, 0], [1, 1], [1, -1]):
        shifted = torch.roll(aggd_block, shift, dims=(2, 3))
        alpha, beta_l, beta_r = estimate_aggd(aggd_block * shifted)
        mean = (beta_r - beta_l) * (torch.lgamma(2 / alpha) - torch.lgamma(1 / alpha)).exp()
        features.extend((alpha, mean, beta_l, beta_r))
    return torch.cat([f.reshape(bsz, 1) for f in features], dim=-1)


def niqe_score(x: torch.Tensor, mu_pris: torch.Tensor, cov_pris: torch.Tensor) -> torch.Tensor:
    """pyiqa 0.1.16 `calculate_niqe(x, 0, True, "yiq")` + `niqe()`, line for line, with the
    Gaussian normalisation on `gauss_filter` and the block features on `niqe_block_features`;
    everything else is pyiqa's own code."""
    from pyiqa.archs.func_util import diff_round
    from pyiqa.matlab_utils import blockproc, imresize, nancov, nanmean
    from pyiqa.utils.color_util import to_y_channel

    img = diff_round(to_y_channel(x, 255, "yiq")).to(torch.float64)
    mu_pris = mu_pris.to(img).repeat(img.size(0), 1)
    cov_pris = cov_pris.to(img).repeat(img.size(0), 1, 1)
    block_h = block_w = NIQE_BLOCK
    h, w = img.shape[-2:]
    img = img[..., : h // block_h * block_h, : w // block_w * block_w]
    features = []
    for scale in (1, 2):
        normalized = normalize_with_gauss(img, "replicate")
        features.append(
            blockproc(normalized, [block_h // scale, block_w // scale], fun=niqe_block_features)
        )
        if scale == 1:
            img = imresize(img / 255.0, scale=0.5, antialiasing=True) * 255.0
    features = torch.cat(features, -1)
    mu_dist = nanmean(features, dim=1)
    cov_dist = nancov(features)
    invcov = torch.linalg.pinv((cov_pris + cov_dist) / 2)
    diff = (mu_pris - mu_dist).unsqueeze(1)
    return torch.sqrt(torch.bmm(torch.bmm(diff, invcov), diff.transpose(1, 2)).squeeze())


def build_niqe(ctx: BuildContext) -> BuiltModel:
    mu, cov = niqe_params()

    def forward(x: torch.Tensor) -> torch.Tensor:
        # pyiqa's defaults for `niqe`: Y channel of YIQ, no border crop, float64 throughout.
        return niqe_score(x, mu, cov).reshape(-1)

    return BuiltModel(forward=forward)


def build_brisque(ctx: BuildContext) -> BuiltModel:
    from pyiqa.archs.brisque_arch import brisque

    model = brisque_model()

    def forward(x: torch.Tensor) -> torch.Tensor:
        return brisque(
            x,
            7,
            7 / 6,
            True,
            model["sv_coef"],
            model["sv"],
            model["gamma"],
            model["rho"],
            1,
            "original",
        ).reshape(-1)

    return BuiltModel(forward=forward)


NIQE = ScorerSpec(
    name="niqe",
    description="NIQE (MATLAB pristine model), full resolution, Y channel",
    lower_better=True,
    score_range=(0.0, 100.0),
    input_policy=InputPolicy(mode="full", min_side=96),  # NIQE needs at least one 96px block
    build=build_niqe,
    packaged_files=(NIQE_PARAMS,),  # pyiqa: float32 in, float64 inside
    batch_cell=NIQE_BLOCK,  # niqe_score crops to whole blocks first, top-left
    default_batch_size=8,
    cpu_batch_size=1,  # CPU, 512x384: 37 img/s at batch 1, 31 at batch 8
)
BRISQUE = ScorerSpec(
    name="brisque",
    description="BRISQUE (LIVE SVR model), full resolution, Y channel",
    lower_better=True,
    score_range=(0.0, 150.0),
    input_policy=InputPolicy(mode="full", min_side=16),
    build=build_brisque,
    packaged_files=(BRISQUE_MODEL,),  # float32 in, as pyiqa (I19 moves 3 points in float64)
    default_batch_size=8,
    cpu_batch_size=1,  # CPU, 512x384: 37 img/s at batch 1, 33 at batch 8
)


def _register() -> None:
    from curation.scorers import register_scorer

    register_scorer(NIQE)
    register_scorer(BRISQUE)


_register()
