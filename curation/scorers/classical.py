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


def build_niqe(ctx: BuildContext) -> BuiltModel:
    from pyiqa.archs.niqe_arch import calculate_niqe

    mu, cov = niqe_params()

    def forward(x: torch.Tensor) -> torch.Tensor:
        # pyiqa's defaults for `niqe`: Y channel of YIQ, no border crop, float64 throughout.
        return calculate_niqe(x, 0, True, "yiq", mu, cov).reshape(-1)

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
    default_batch_size=8,
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
)


def _register() -> None:
    from curation.scorers import register_scorer

    register_scorer(NIQE)
    register_scorer(BRISQUE)


_register()
