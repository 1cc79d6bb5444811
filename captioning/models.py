"""Which Florence-2 to load: hub ids and short names map to `hfaid weights` specs, or a folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hfaid_core.errors import HfaidError

# Florence-2 checkpoints converted for transformers' native classes (no remote code).
CHECKPOINTS = {
    "florence2-base": "florence-community/Florence-2-base",
    "florence2-large": "florence-community/Florence-2-large",
}
# Files every converted checkpoint has (verified); fetch also takes the processor/tokenizer files.
CHECKPOINT_FILES = ("config.json", "model.safetensors")
FETCH_PATTERNS = ["*.json", "*.safetensors", "*.txt"]


@dataclass(frozen=True)
class ModelRef:
    name: str  # what the caption rows record as `model`: hub id, or the folder given
    folder: Path


def fetch_checkpoint(spec_name: str, dest: Path) -> None:
    """Download one Florence-2 checkpoint into `dest` (needs network and huggingface_hub)."""
    from huggingface_hub import snapshot_download

    snapshot_download(CHECKPOINTS[spec_name], local_dir=dest, allow_patterns=FETCH_PATTERNS)


def register_florence_weights() -> None:
    """Register florence2-base / florence2-large with `hfaid weights` (list, fetch, verify)."""
    from functools import partial

    from hfaid_core.weights import WeightSpec, register_weights

    for spec_name, hub_id in CHECKPOINTS.items():
        register_weights(WeightSpec(
            name=spec_name, files=CHECKPOINT_FILES, fetch=partial(fetch_checkpoint, spec_name),
            description=f"Florence-2 captioner ({hub_id}, transformers-native)",
        ))


def is_known_checkpoint(model: str) -> bool:
    """A hub id or short name of a Florence-2 checkpoint (rather than a folder)."""
    return any(model in pair for pair in CHECKPOINTS.items())


def resolve_model(model: str, weights_dir: Path | str | None = None) -> ModelRef:
    """A folder path, or a hub id / short name whose files `hfaid weights fetch` put in place."""
    as_path = Path(model).expanduser()
    if as_path.is_dir():
        if not (as_path / "config.json").is_file():
            raise HfaidError(f"--model {model}: folder has no config.json (not a saved model)")
        return ModelRef(name=str(model), folder=as_path)
    spec_name = next((k for k, v in CHECKPOINTS.items() if model in (k, v)), None)
    if spec_name is None:
        known = ", ".join(sorted(CHECKPOINTS.values()))
        raise HfaidError(f"--model {model!r} is neither a model folder nor one of: {known}")
    return ModelRef(name=CHECKPOINTS[spec_name], folder=_require(spec_name, weights_dir))


def _require(spec_name: str, weights_dir: Path | str | None) -> Path:
    from hfaid_core.weights import require_weights

    register_florence_weights()
    return require_weights(spec_name, weights_dir)
