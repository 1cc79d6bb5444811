"""Image embeddings for semantic dedup: CLIP's image tower through transformers, on the runner.

The model is an `hfaid weights` entry (a folder with config.json, model.safetensors and
preprocessor_config.json); tests and benchmarks build the same architecture with random
weights (`write_random_clip`) and load it through the same `from_pretrained` path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from hfaid_core.errors import HfaidError
from hfaid_core.image_open import DEFAULT_MAX_PIXELS, open_image

# The projected image embedding (CLIP's joint space), L2-normalised; of the upright RGB image,
# preprocessed as the checkpoint's image processor says (shortest side, centre crop).
EMBED_VERSION = "clip-image-embeds-l2-1"
CHECKPOINTS = {"clip-vit-b32": "openai/clip-vit-base-patch32"}
CHECKPOINT_FILES = ("config.json", "model.safetensors", "preprocessor_config.json")
EMBED_SCHEMA = pa.schema(
    [("image_id", pa.string()), ("vector", pa.list_(pa.float32())), ("error", pa.string())]
)


def fetch_clip(spec_name: str, dest: Path) -> None:
    """Download one CLIP checkpoint's files into `dest` (needs network and huggingface_hub)."""
    from huggingface_hub import snapshot_download

    snapshot_download(
        CHECKPOINTS[spec_name],
        local_dir=dest,
        allow_patterns=["config.json", "model.safetensors", "preprocessor_config.json"],
    )


def register_embedding_weights() -> None:
    """Register the CLIP image encoders with `hfaid weights` (list, fetch, verify)."""
    from functools import partial

    from hfaid_core.weights import WeightSpec, register_weights

    for spec_name, hub_id in CHECKPOINTS.items():
        register_weights(
            WeightSpec(
                name=spec_name,
                files=CHECKPOINT_FILES,
                fetch=partial(fetch_clip, spec_name),
                description=f"CLIP image encoder for `dedup --method embedding` ({hub_id})",
            )
        )


def model_folder(model: str, weights_dir: str | None) -> Path:
    """A folder holding a saved CLIP model, or the `hfaid weights` entry of that name."""
    as_path = Path(model).expanduser()
    if as_path.is_dir():
        if not (as_path / "config.json").is_file():
            raise HfaidError(f"embedding model {model}: folder has no config.json")
        return as_path
    if model not in CHECKPOINTS:
        known = ", ".join(sorted(CHECKPOINTS))
        raise HfaidError(f"embedding model {model!r} is neither a model folder nor one of: {known}")
    from hfaid_core.weights import require_weights

    register_embedding_weights()
    return require_weights(model, weights_dir or None)


def resolve_device(device: str) -> str:
    """"auto" -> cuda when available, else cpu; an unavailable CUDA device is a clear error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise HfaidError(f"device {device} asked for, but no CUDA device is available")
    if not (device == "cpu" or device.startswith("cuda")):
        raise HfaidError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")
    return device


@dataclass
class EmbedWorker:
    """Decodes each image, embeds a batch at a time; one unreadable file is an error row."""

    folder: str
    device: str
    batch_size: int
    max_pixels: int = DEFAULT_MAX_PIXELS  # [decode] max_pixels, checked from the header
    _model: Any = field(default=None, init=False, repr=False)
    _processor: Any = field(default=None, init=False, repr=False)

    def _load(self) -> None:
        import torch
        from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

        torch.set_grad_enabled(False)
        self._processor = CLIPImageProcessor.from_pretrained(self.folder)
        self._model = (
            CLIPVisionModelWithProjection.from_pretrained(self.folder).to(self.device).eval()
        )

    def process(self, items: pa.Table) -> pa.Table:
        if self._model is None:
            self._load()
        rows = items.to_pylist()
        vectors: list[Any] = [None] * len(rows)
        errors: list[str | None] = [None] * len(rows)
        images, where = [], []
        for k, row in enumerate(rows):
            try:
                images.append(_upright_rgb(row["path"], self.max_pixels))
                where.append(k)
            except Exception as exc:  # one unreadable file must not stop the shard
                errors[k] = f"{type(exc).__name__}: {exc}"[:300]
            if len(images) == self.batch_size or (k == len(rows) - 1 and images):
                for slot, vector in zip(where, self._embed(images), strict=True):
                    vectors[slot] = vector
                images, where = [], []
        return pa.table(
            {
                "image_id": [r["image_id"] for r in rows],
                "vector": pa.array(vectors, pa.list_(pa.float32())),
                "error": pa.array(errors, pa.string()),
            },
            schema=EMBED_SCHEMA,
        )

    def _embed(self, images: list) -> list[np.ndarray]:
        import torch

        pixels = self._processor(images=images, return_tensors="pt")["pixel_values"]
        embeds = self._model(pixel_values=pixels.to(self.device)).image_embeds
        embeds = torch.nn.functional.normalize(embeds.float(), dim=-1)
        return list(embeds.cpu().numpy().astype(np.float32))


def _upright_rgb(path: str, max_pixels: int):
    from PIL import ImageOps

    with open_image(path, max_pixels) as im:
        im.draft("RGB", (448, 448))  # JPEG: decode near the 224 px the model sees
        return ImageOps.exif_transpose(im).convert("RGB")


def write_random_clip(folder: Path, seed: int = 0) -> Path:
    """A tiny random-weight CLIP image tower with its image processor, saved like a checkpoint."""
    import torch
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    config = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        image_size=224, patch_size=32, projection_dim=16,
    )
    CLIPVisionModelWithProjection(config).save_pretrained(folder)
    CLIPImageProcessor(
        size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}
    ).save_pretrained(folder)
    return folder
