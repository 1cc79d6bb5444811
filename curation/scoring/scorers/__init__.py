"""The scorer registry: `create_scorer(name, ...)` builds a metric from its declared spec."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from curation.scoring.scorers.base import (
    BuildContext,
    BuiltModel,
    InputPolicy,
    ScorerSpec,
    unit_float,
)
from curation.scoring.scorers.precision import compute_dtype, keep_float32
from hfaid_core.errors import HfaidError
from hfaid_core.weights import fingerprint, require_weights, weights_dir

DATA_DIR = Path(__file__).parent / "data"

_SPECS: dict[str, ScorerSpec] = {}


def register_scorer(spec: ScorerSpec) -> None:
    _SPECS[spec.name] = spec


def list_scorers() -> list[ScorerSpec]:
    return [_SPECS[n] for n in sorted(_SPECS)]


def get_scorer_spec(name: str) -> ScorerSpec:
    if name not in _SPECS:
        raise HfaidError(f"unknown metric {name!r}; known: {', '.join(sorted(_SPECS))}")
    return _SPECS[name]


class Scorer:
    """A built metric: `score(batch)` maps (N,3,H,W) uint8 or [0,1] floats to N Python floats."""

    def __init__(
        self,
        spec: ScorerSpec,
        built: BuiltModel,
        device: torch.device,
        dtype: torch.dtype,
        version: str,
    ) -> None:
        self.spec, self.built, self.device, self.dtype, self.version = (
            spec,
            built,
            device,
            dtype,
            version,
        )

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def input_policy(self) -> InputPolicy:
        return self.spec.input_policy

    def score(self, batch: torch.Tensor) -> list[float]:
        """Scores for a batch of uint8 images (as decoded) or floats already in [0, 1]."""
        return self.read(self.launch(batch))

    def prepare(self, batch: torch.Tensor) -> torch.Tensor:
        """The model's inputs for uint8 images (as decoded) or floats in [0, 1], all of one size:
        the images on the device in the compute dtype (still uint8 for a metric that
        `takes_uint8`), or what `BuiltModel.prepare` makes of them."""
        x = batch.to(self.device, non_blocking=True)
        if not (self.spec.takes_uint8 and x.dtype == torch.uint8):
            x = unit_float(x, self.dtype)
        if self.built.prepare is None:
            return x
        with torch.inference_mode():
            return self.built.prepare(x)

    def launch(self, batch: torch.Tensor, prepared: bool = False) -> torch.Tensor:
        """Queues the forward pass and returns its output on the device without waiting for it.
        `prepared`: the batch is `prepare`'s (or `BuiltModel.join`'s) output, not images.

        The runner reads a batch's scores only after launching the next one, so the GPU is
        never idle while the host receives decoded images and builds result rows.
        """
        x = batch if prepared else self.prepare(batch)
        with torch.inference_mode():
            return self.built.forward(x).reshape(-1)

    @staticmethod
    def read(output: torch.Tensor) -> list[float]:
        """The launched batch's scores as Python floats (waits for the device)."""
        return [float(v) for v in output.double().cpu().tolist()]


def resolve_device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):  # torch's message lists its every backend: say ours
        raise HfaidError(f"--device {device!r}: use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise HfaidError("--device cuda: no CUDA device is available here (use --device cpu)")
    return dev


def weight_paths(
    spec: ScorerSpec, weights_root: Path | str | None
) -> tuple[Path | None, list[Path]]:
    """The weights folder (checked: missing files fail here, before any work) and its files."""
    if spec.weights is None:
        return None, [DATA_DIR / f for f in spec.packaged_files]
    from hfaid_core.weights import get_spec

    folder = require_weights(spec.weights, weights_root)
    return folder, [folder / f for f in get_spec(spec.weights).files]


# Half precisions named in a version: their scores differ from float32's (by ~1e-4 relative
# with the heads in float32), so a float32 run must not skip them as already scored, nor they it.
_HALF_TAGS = {torch.bfloat16: "bf16", torch.float16: "fp16"}


def scorer_version(
    spec: ScorerSpec,
    weights_root: Path | str | None,
    options: dict[str, Any] | None = None,
    dtype: torch.dtype = torch.float32,
) -> str:
    """library version + weights fingerprint (+ architecture overrides, + half precision)."""
    _, files = weight_paths(spec, weights_root)
    version = f"{spec.library}-{spec.library_version()}+{fingerprint(files) if files else 'none'}"
    if options:
        blob = json.dumps(options, sort_keys=True, default=str).encode()
        version += f"+opt{hashlib.sha256(blob).hexdigest()[:8]}"
    if dtype in _HALF_TAGS:
        version += f"+{_HALF_TAGS[dtype]}"
    return version


def create_scorer(
    name: str,
    device: str | torch.device = "cpu",
    dtype: str | None = None,
    weights_dir: Path | str | None = None,
    **options: Any,
) -> Scorer:
    """Build a registered metric on a device; options are architecture overrides (tests)."""
    spec = get_scorer_spec(name)
    dev = resolve_device(device)
    if dev.type not in spec.devices:
        raise HfaidError(f"metric {name} does not run on {dev.type}")
    torch_dtype = compute_dtype(spec, dev, dtype)
    folder, _ = weight_paths(spec, weights_dir)
    built = spec.build(BuildContext(device=dev, dtype=torch_dtype, weights=folder, options=options))
    if spec.batches_mixed_sizes and (built.prepare is None or built.join is None):
        raise TypeError(f"{name} batches mixed sizes but its builder gives no prepare/join")
    if built.module is not None:
        built.module.eval()
        if torch_dtype in (torch.float16, torch.bfloat16):
            keep_float32(built.module, spec.float32_modules)
    version = scorer_version(spec, weights_dir, options, torch_dtype)
    return Scorer(spec, built, dev, torch_dtype, version)


def default_weights_root(override: Path | str | None = None) -> Path:
    return weights_dir(override)


# Importing the scorer modules registers them (and their weight specs).
from curation.scoring.scorers import classical, pyiqa_models, qalign  # noqa: E402,F401
