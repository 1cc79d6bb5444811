"""Model weights registry: where each model's files live, fetching them, missing-file errors."""

from __future__ import annotations

import hashlib
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hfaid_core.errors import HfaidError

# Modules that register weight specs when imported (or through the named function); listed here
# so `hfaid weights list` shows every model without importing heavy code at CLI start-up.
WEIGHT_PROVIDERS: tuple[tuple[str, str | None], ...] = (
    ("curation.scoring.scorers", None),
    ("curation.evaluate.fullref", None),
    ("captioning.models", "register_florence_weights"),
    ("curation.stage1.embed", "register_embedding_weights"),
)

# Files above this size are fingerprinted by size plus their first and last MiB (hashing 15 GB
# of Q-Align shards on every run would cost minutes); smaller ones by their full content.
_FULL_HASH_LIMIT = 256 * 1024 * 1024


@dataclass(frozen=True)
class WeightSpec:
    """One model's files, relative to its folder `<weights dir>/<name>/`, and how to get them."""

    name: str
    files: list[str] | tuple[str, ...]
    fetch: Callable[[Path], None]  # fills the given folder; may need network
    description: str = ""
    offline: bool = False  # fetch needs no network (files come from installed packages)
    extra: dict = field(default_factory=dict, compare=False)


_REGISTRY: dict[str, WeightSpec] = {}


def register_weights(spec: WeightSpec) -> None:
    """Add or replace a spec (re-registering the same name is harmless)."""
    _REGISTRY[spec.name] = spec


def load_providers() -> None:
    """Import every module that registers weights; a missing optional package is skipped."""
    for module_name, function in WEIGHT_PROVIDERS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if function and hasattr(module, function):
            getattr(module, function)()


def registered_weights() -> dict[str, WeightSpec]:
    load_providers()
    return dict(sorted(_REGISTRY.items()))


def get_spec(name: str) -> WeightSpec:
    if name not in _REGISTRY:
        load_providers()
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise HfaidError(f"no weights named {name!r}; known: {known}")
    return _REGISTRY[name]


def weights_dir(override: Path | str | None = None) -> Path:
    """--weights-dir / [weights] dir, else $HFAID_WEIGHTS_DIR, else ~/.cache/hfaid/weights."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get("HFAID_WEIGHTS_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "hfaid" / "weights"


def missing_files(name: str, dir: Path | str | None = None) -> list[Path]:
    spec = get_spec(name)
    folder = weights_dir(dir) / name
    return [folder / f for f in spec.files if not (folder / f).is_file()]


def require_weights(name: str, dir: Path | str | None = None) -> Path:
    """The folder holding `name`'s files; offline specs are filled on the spot, else an error."""
    spec = get_spec(name)
    folder = weights_dir(dir) / name
    missing = missing_files(name, dir)
    if missing and spec.offline:
        fetch_weights(name, dir)
        missing = missing_files(name, dir)
    if missing:
        raise HfaidError(
            f"weights for {name}: missing file {missing[0]}; run `hfaid weights fetch {name}` "
            "on a machine with network access (or point --weights-dir / [weights] dir at a copy)"
        )
    return folder


def fetch_weights(name: str, dir: Path | str | None = None) -> Path:
    """Run the spec's fetch into its folder, then check every declared file arrived."""
    spec = get_spec(name)
    folder = weights_dir(dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    try:
        spec.fetch(folder)
    except HfaidError:
        raise
    except Exception as exc:  # network and hub errors: one line naming the model
        raise HfaidError(
            f"fetching weights for {name} failed: {type(exc).__name__}: {exc}"
        ) from None
    still = missing_files(name, dir)
    if still:
        raise HfaidError(f"fetching weights for {name} did not produce {still[0]}")
    return folder


def fingerprint(paths: list[Path]) -> str:
    """A short content fingerprint of weight files, recorded in scorer versions."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        size = path.stat().st_size
        digest.update(f"{path.name}:{size}:".encode())
        with path.open("rb") as fh:
            if size <= _FULL_HASH_LIMIT:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
            else:
                digest.update(fh.read(1 << 20))
                fh.seek(size - (1 << 20))
                digest.update(fh.read(1 << 20))
    return digest.hexdigest()[:12]


def verify_weights(name: str, dir: Path | str | None = None) -> dict:
    """Present/missing files and the fingerprint of what is present."""
    spec = get_spec(name)
    folder = weights_dir(dir) / name
    present = [folder / f for f in spec.files if (folder / f).is_file()]
    return {
        "name": name,
        "folder": str(folder),
        "files": len(spec.files),
        "missing": [str(p) for p in missing_files(name, dir)],
        "fingerprint": fingerprint(present) if present else "",
    }
