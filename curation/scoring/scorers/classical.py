"""NIQE and BRISQUE with the reference parameters vendored in scorers/data (offline)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import torch

from curation.scoring.scorers.base import BuildContext, BuiltModel, InputPolicy, ScorerSpec
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
    from pyiqa.archs.func_util import diff_round
    from pyiqa.matlab_utils import blockproc, nancov, nanmean
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
            img = imresize(img / 255.0, 0.5) * 255.0
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
    from curation.scoring.scorers import register_scorer

    register_scorer(NIQE)
    register_scorer(BRISQUE)


_register()
