"""Checks on fine-tuning inputs (shards, pretrained folder) that run before any model loads."""

from __future__ import annotations

import json
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from hfaid_core.errors import HfaidError

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
CAPTION_EXT = "txt"
# The folders a Stable Diffusion pipeline needs, with the file that proves each is there.
PIPELINE_PARTS = {
    "unet": "config.json",
    "vae": "config.json",
    "text_encoder": "config.json",
    "tokenizer": None,
    "scheduler": "scheduler_config.json",
}
_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")


@dataclass(frozen=True)
class ShardSet:
    shards: list[Path]
    samples: int
    # "<shard file name>/<sample key>" -> caption, for every sample with an image
    captions: dict[str, str] = field(default_factory=dict)


def caption_key(shard: str | Path, key: str) -> str:
    """How a sample's caption is named across shards (keys repeat between exports' shards)."""
    return f"{Path(shard).name}/{key}"


def split_member(name: str) -> tuple[str, str]:
    """WebDataset's key/extension split: the key ends at the first dot of the file name."""
    folder, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower()


def find_shards(data: Path) -> list[Path]:
    """The `*.tar` shards of an export folder (or one shard file)."""
    data = Path(data)
    if not data.exists():
        raise HfaidError(f"--data {data} does not exist; point it at an `hfaid export` folder")
    if data.is_file():
        if data.suffix != ".tar":
            raise HfaidError(f"--data {data} is not a .tar shard or a folder of shards")
        return [data]
    shards = sorted(data.glob("*.tar")) or sorted(data.glob("**/*.tar"))
    if not shards:
        raise HfaidError(f"no WebDataset shards (*.tar) under {data}; create them with "
                         "`hfaid export --format webdataset`")
    return shards


def check_shards(shards: list[Path], allow_empty_captions: bool = False) -> ShardSet:
    """Every sample needs an image and a non-empty caption; errors name the first offender.

    `allow_empty_captions` accepts an empty .txt (the sample trains on the identifier alone),
    for smoke runs on uncaptioned exports; a missing .txt is always an error.
    """
    samples = 0
    captions: dict[str, str] = {}
    for shard in shards:
        found: dict[str, set[str]] = {}
        texts: dict[str, str] = {}
        empty: list[str] = []
        try:
            with tarfile.open(shard) as tar:
                for member in tar:
                    if not member.isfile():
                        continue
                    key, ext = split_member(member.name)
                    found.setdefault(key, set()).add(ext)
                    if ext == CAPTION_EXT:
                        handle = tar.extractfile(member)
                        text = handle.read().decode("utf-8", "replace").strip() if handle else ""
                        texts[key] = text
                        if not text:
                            empty.append(key)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise HfaidError(f"{shard} is not a readable tar shard: {exc}") from None
        with_image = {k: exts for k, exts in found.items() if exts & set(IMAGE_EXTS)}
        no_caption = sorted(k for k, exts in with_image.items() if CAPTION_EXT not in exts)
        if no_caption:
            raise HfaidError(f"{shard}: {len(no_caption)} sample(s) have no caption "
                             f"(.txt), e.g. {no_caption[0]!r}; caption them and export again")
        if empty and not allow_empty_captions:
            raise HfaidError(f"{shard}: {len(empty)} sample(s) have an empty caption, "
                             f"e.g. {sorted(empty)[0]!r}; caption them and export again "
                             "(or pass --allow-empty-captions)")
        samples += len(with_image)
        captions.update((caption_key(shard, k), texts[k]) for k in with_image)
    if samples == 0:
        raise HfaidError(f"the {len(shards)} shard(s) hold no samples with an image "
                         f"({', '.join(IMAGE_EXTS)}) and a caption")
    return ShardSet(shards=shards, samples=samples, captions=captions)


def resolve_pretrained(pretrained: str) -> Path:
    """A local diffusers Stable Diffusion folder (or a hub id already in the local cache)."""
    path = Path(pretrained).expanduser()
    if not path.exists():
        if not _HUB_ID.fullmatch(pretrained):
            raise HfaidError(f"--base {pretrained} does not exist")
        path = _cached_snapshot(pretrained)
    if not path.is_dir():
        raise HfaidError(f"--base {path} is not a folder")
    index = path / "model_index.json"
    if not index.is_file():
        raise HfaidError(f"--base {path} is not a diffusers model (no model_index.json); "
                         "pass a folder saved by DiffusionPipeline.save_pretrained")
    try:
        json.loads(index.read_text())
    except (OSError, ValueError) as exc:
        raise HfaidError(f"--base {index} is not valid JSON: {exc}") from None
    for part, marker in PIPELINE_PARTS.items():
        folder = path / part
        if not folder.is_dir() or (marker and not (folder / marker).is_file()):
            need = f"{part}/{marker}" if marker else f"{part}/"
            raise HfaidError(f"--base {path} is not a Stable Diffusion model: {need} "
                             "is missing")
    if not any((path / "unet").glob("*.safetensors")) and not any((path / "unet").glob("*.bin")):
        raise HfaidError(f"--base {path}: unet/ holds no weights (*.safetensors or *.bin)")
    return path


def _cached_snapshot(repo_id: str) -> Path:
    """A hub id resolves only from the local Hugging Face cache: training never downloads."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:
        raise HfaidError(
            f"--base {repo_id}: not a local folder and not in the Hugging Face cache; "
            f"download it first (`hf download {repo_id} --local-dir DIR`) and pass DIR"
        ) from None
