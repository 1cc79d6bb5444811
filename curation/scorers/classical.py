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


def niqe_score(x: torch.Tensor, mu_pris: torch.Tensor, cov_pris: torch.Tensor) -> torch.Tensor:
    """pyiqa 0.1.16 `calculate_niqe(x, 0, True, "yiq")` + `niqe()`, line for line, with the
    Gaussian normalisation on `gauss_filter`; everything else is pyiqa's own code."""
    from pyiqa.archs.func_util import diff_round
    from pyiqa.archs.niqe_arch import compute_feature
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
            blockproc(normalized, [block_h // scale, block_w // scale], fun=compute_feature)
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
