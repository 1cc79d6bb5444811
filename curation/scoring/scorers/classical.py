"""NIQE and BRISQUE with the reference parameters vendored in scorers/data (offline)."""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import numpy as np
import torch

from curation.scoring.scorers.base import (
    BuildContext,
    BuiltModel,
    InputPolicy,
    ScorerSpec,
    unit_float,
)
from curation.scoring.scorers.matlab_resize import imresize
from curation.scoring.scorers.nss import brisque_features, niqe_block_features, normalize_with_gauss

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


def niqe_score(x: torch.Tensor, mu_pris: torch.Tensor, cov_pris: torch.Tensor) -> torch.Tensor:
    """pyiqa 0.1.16 `calculate_niqe(x, 0, True, "yiq")` + `niqe()`, line for line, with the
    Gaussian normalisation, the block features and the resize on this package's faster twins
    (`nss`, `matlab_resize`); everything else is pyiqa's own code."""
    img = _niqe_luma(x)
    h, w = img.shape[-2:]
    img = img[..., : h // NIQE_BLOCK * NIQE_BLOCK, : w // NIQE_BLOCK * NIQE_BLOCK]
    return _niqe_distance(torch.cat(_niqe_block_features(img), -1), mu_pris, cov_pris)


def _niqe_luma(x: torch.Tensor) -> torch.Tensor:
    from pyiqa.archs.func_util import diff_round
    from pyiqa.utils.color_util import to_y_channel

    return diff_round(to_y_channel(x, 255, "yiq")).to(torch.float64)


def _niqe_block_features(
    img: torch.Tensor, inner: tuple[int, int, int, int] | None = None
) -> list[torch.Tensor]:
    """Per-block features at full and half resolution, (b, blocks, 18) each, blocks in
    pyiqa's `blockproc` order (column by column); `inner` (top, bottom, left, right) keeps only
    the blocks there, the rest of `img` being context for the filters."""
    from pyiqa.matlab_utils import blockproc

    top, bottom, left, right = inner or (0, img.shape[-2], 0, img.shape[-1])
    features = []
    for scale in (1, 2):
        normalized = normalize_with_gauss(img, "replicate")
        normalized = normalized[..., top // scale : bottom // scale, left // scale : right // scale]
        block = NIQE_BLOCK // scale
        features.append(blockproc(normalized, [block, block], fun=niqe_block_features))
        if scale == 1:
            img = imresize(img / 255.0, 0.5) * 255.0
    return features


def _niqe_distance(features: torch.Tensor, mu_pris: torch.Tensor, cov_pris: torch.Tensor
                   ) -> torch.Tensor:
    from pyiqa.matlab_utils import nancov, nanmean

    mu_pris = mu_pris.to(features).repeat(features.size(0), 1)
    cov_pris = cov_pris.to(features).repeat(features.size(0), 1, 1)
    mu_dist = nanmean(features, dim=1)
    cov_dist = nancov(features)
    invcov = torch.linalg.pinv((cov_pris + cov_dist) / 2)
    diff = (mu_pris - mu_dist).unsqueeze(1)
    return torch.sqrt(torch.bmm(torch.bmm(diff, invcov), diff.transpose(1, 2)).squeeze())


# Images above this many pixels are measured tile by tile (`niqe_score_tiled`), in tiles of
# about a million pixels (as fast per pixel as whole images, 1.14x the pixels with margins).
NIQE_TILE_PIXELS = 4_000_000
NIQE_TILE = 1_000_000
# Context read around a tile (full-resolution px, even): the 7x7 Gaussian reads 3 px at each
# scale (6 at full resolution for the half one) and the halving's 10 taps 4-5 px.
NIQE_TILE_MARGIN = 32


def niqe_score_tiled(x: torch.Tensor, mu_pris: torch.Tensor, cov_pris: torch.Tensor,
                     dtype: torch.dtype, tile_pixels: int = NIQE_TILE) -> torch.Tensor:
    """`niqe_score` of one uint8 image (1, 3, H, W) in tiles of about `tile_pixels`, with the
    same score to 1e-12: NIQE's features are per 96 px block, and each block's numbers depend
    only on pixels within the margin around it, so tiles cut on block edges and read with that
    margin give every block the values of the whole-image pass (the halving starts on even rows
    and columns, so it samples the same positions), but for the last bit of a few features
    (torch reduces a batch of blocks differently by its size). The blocks are put back in
    `blockproc`'s order, so the mean and covariance add them up in the same order. Memory: one
    tile's floats instead of the whole image's (~130 bytes per pixel)."""
    height = x.shape[-2] // NIQE_BLOCK * NIQE_BLOCK
    width = x.shape[-1] // NIQE_BLOCK * NIQE_BLOCK
    side = max(NIQE_BLOCK, math.isqrt(tile_pixels) // NIQE_BLOCK * NIQE_BLOCK)
    cols, rows = width // NIQE_BLOCK, height // NIQE_BLOCK
    grids: list[torch.Tensor] = []
    for top in range(0, height, side):
        for left in range(0, width, side):
            bottom, right = min(top + side, height), min(left + side, width)
            y0, x0 = max(0, top - NIQE_TILE_MARGIN), max(0, left - NIQE_TILE_MARGIN)
            y1 = min(height, bottom + NIQE_TILE_MARGIN)
            x1 = min(width, right + NIQE_TILE_MARGIN)
            img = _niqe_luma(unit_float(x[..., y0:y1, x0:x1], dtype))
            inner = (top - y0, bottom - y0, left - x0, right - x0)
            c0, c1, r0, r1 = (left // NIQE_BLOCK, right // NIQE_BLOCK,
                              top // NIQE_BLOCK, bottom // NIQE_BLOCK)
            for k, features in enumerate(_niqe_block_features(img, inner)):
                if len(grids) <= k:
                    grids.append(features.new_empty(cols, rows, features.shape[-1]))
                grids[k][c0:c1, r0:r1] = features.reshape(c1 - c0, r1 - r0, -1)
    scale1, scale2 = (g.reshape(1, cols * rows, -1) for g in grids)
    return _niqe_distance(torch.cat([scale1, scale2], -1), mu_pris, cov_pris)


def build_niqe(ctx: BuildContext) -> BuiltModel:
    mu, cov = niqe_params()

    def forward(x: torch.Tensor) -> torch.Tensor:
        # pyiqa's defaults for `niqe`: Y channel of YIQ, no border crop, float64 throughout.
        if x.shape[-2] * x.shape[-1] <= NIQE_TILE_PIXELS:
            return niqe_score(unit_float(x, ctx.dtype), mu, cov).reshape(-1)
        scores = [niqe_score_tiled(x[i : i + 1], mu, cov, ctx.dtype) for i in range(len(x))]
        return torch.stack(scores).reshape(-1)

    return BuiltModel(forward=forward)


def brisque_score(x: torch.Tensor, model: dict) -> torch.Tensor:
    """pyiqa 0.1.16 `brisque(x, 7, 7/6, True, ..., scale=1, version="original")`, line for
    line, with the features (`nss.brisque_features`) and the resize (`matlab_resize`) on this
    package's faster twins; the Y channel, feature scaling and SVR are pyiqa's own code."""
    from pyiqa.archs.brisque_arch import rbf_kernel, scale_features
    from pyiqa.utils.color_util import to_y_channel

    x = to_y_channel(x, 255.0)
    features = []
    for _ in range(2):
        features.append(brisque_features(x, 7, 7 / 6))
        x = imresize(x, 0.5)
    features = torch.cat(features, dim=-1)
    sv_coef = model["sv_coef"].to(x)
    sv = model["sv"].to(x).t()
    kernel_features = rbf_kernel(features=scale_features(features), sv=sv, gamma=model["gamma"])
    return kernel_features @ sv_coef - model["rho"]


def build_brisque(ctx: BuildContext) -> BuiltModel:
    model = brisque_model()
    return BuiltModel(forward=lambda x: brisque_score(x, model).reshape(-1))


NIQE = ScorerSpec(
    name="niqe",
    description="NIQE (MATLAB pristine model), full resolution, Y channel",
    lower_better=True,
    score_range=(0.0, 100.0),
    input_policy=InputPolicy(mode="full", min_side=96),  # NIQE needs at least one 96px block
    build=build_niqe,
    packaged_files=(NIQE_PARAMS,),  # pyiqa: float32 in, float64 inside
    batch_cell=NIQE_BLOCK,  # niqe_score crops to whole blocks first, top-left
    takes_uint8=True,  # converts one tile at a time above NIQE_TILE_PIXELS
    tile_pixels=NIQE_TILE_PIXELS,
    bytes_per_pixel=130,  # float64 luma, its Gaussian moments and block features (1-4 MP)
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
    bytes_per_pixel=72,  # whole-image statistics: not tiled (1-4 MP)
    default_batch_size=8,
    cpu_batch_size=1,  # CPU, 512x384: 37 img/s at batch 1, 33 at batch 8
)


def _register() -> None:
    from curation.scoring.scorers import register_scorer

    register_scorer(NIQE)
    register_scorer(BRISQUE)


_register()
