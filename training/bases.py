"""Base models for fine-tuning: named SD checkpoints, their prediction type and native size."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from hfaid_core.errors import HfaidError
from training.checks import resolve_pretrained


@dataclass(frozen=True)
class NamedBase:
    hub_id: str
    prediction_type: str  # what its scheduler config says (the loss follows it)
    resolution: int  # the size it was trained at
    use: str  # who expects it


# SeeSR, StableSR and DiffBIR are built on SD 2.1-base: their UNet-side modules expect an
# epsilon-predicting 512 px prior, so that is the default for the super-resolution use.
BASES: dict[str, NamedBase] = {
    "sd21-base": NamedBase("stabilityai/stable-diffusion-2-1-base", "epsilon", 512,
                           "SeeSR, StableSR, DiffBIR (the SR use)"),
    "sd21": NamedBase("stabilityai/stable-diffusion-2-1", "v_prediction", 768,
                      "text-to-image at 768 px (the paper's footnote links it)"),
}
DEFAULT_BASE = "sd21-base"


@dataclass(frozen=True)
class BaseInfo:
    """A resolved base: its folder, name (or None for a path) and what its configs say."""

    path: Path
    name: str | None
    prediction_type: str
    resolution: int | None  # UNet sample size x VAE factor, None when a config lacks them

    def describe(self) -> str:
        size = f"{self.resolution} px" if self.resolution else "size unknown"
        label = self.name or str(self.path)
        return f"{label} ({self.prediction_type}, {size})"


def resolve_base(value: str) -> BaseInfo:
    """`sd21-base`, `sd21` (hub ids that must be in the local Hugging Face cache) or a folder.

    A named base whose scheduler says another prediction type than the name promises is an
    error: the refined UNet would not fit the pipelines that expect it."""
    named = BASES.get(value)
    try:
        path = resolve_pretrained(named.hub_id if named else value)
    except HfaidError as exc:
        if named is None:
            raise
        raise HfaidError(str(exc).replace(f"--base {named.hub_id}",
                                          f"--base {value} ({named.hub_id})")) from None
    info = inspect_base(path, value if named else None)
    if named and info.prediction_type != named.prediction_type:
        raise HfaidError(f"--base {value}: {path} predicts {info.prediction_type}, but "
                         f"{value} is {named.prediction_type}; pass the folder as a PATH")
    return info


def inspect_base(path: Path, name: str | None = None) -> BaseInfo:
    """Prediction type (scheduler config) and native size (UNet sample size x VAE factor)."""
    scheduler = _read_json(path / "scheduler" / "scheduler_config.json")
    prediction = scheduler.get("prediction_type", "epsilon")
    if prediction not in ("epsilon", "v_prediction"):
        raise HfaidError(f"--base {path}: prediction type {prediction!r} is not supported "
                         "(epsilon or v_prediction)")
    unet = _read_json(path / "unet" / "config.json")
    vae = _read_json(path / "vae" / "config.json")
    sample = unet.get("sample_size")
    blocks = vae.get("block_out_channels")
    resolution = None
    if isinstance(sample, int) and isinstance(blocks, list) and blocks:
        resolution = sample * 2 ** (len(blocks) - 1)
    return BaseInfo(path, name, prediction, resolution)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise HfaidError(f"--base: cannot read {path}: {exc}") from None
