"""Florence-2 detailed captions with transformers' native model: batched, greedy or beam search."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from hfaid_core.errors import HfaidError
from hfaid_core.image_open import DEFAULT_MAX_PIXELS, open_image

DEFAULT_TASK = "<MORE_DETAILED_CAPTION>"


@dataclass(frozen=True)
class GenerationSettings:
    """What `generate` is asked for; part of the caption version, so a change re-captions."""

    num_beams: int = 3
    max_new_tokens: int = 256
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0

    def tag(self) -> str:
        """Short text for the version string, e.g. "b3-t256" or "b5-t512-rp1.3-nr3"."""
        tag = f"b{self.num_beams}-t{self.max_new_tokens}"
        if self.repetition_penalty != 1.0:
            tag += f"-rp{self.repetition_penalty:g}"
        if self.no_repeat_ngram_size:
            tag += f"-nr{self.no_repeat_ngram_size}"
        return tag

    def generate_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "num_beams": self.num_beams, "max_new_tokens": self.max_new_tokens,
            "do_sample": False, "early_stopping": self.num_beams > 1 or None,
        }
        if self.repetition_penalty != 1.0:
            kwargs["repetition_penalty"] = self.repetition_penalty
        if self.no_repeat_ngram_size:
            kwargs["no_repeat_ngram_size"] = self.no_repeat_ngram_size
        return {k: v for k, v in kwargs.items() if v is not None}

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


@dataclass
class CaptionResult:
    text: str
    n_tokens: int  # generated tokens, end-of-sequence included
    truncated: bool  # generation stopped at max_new_tokens without an end-of-sequence token


def model_fingerprint(model_dir: Path) -> str:
    """A short hash of the config and weight files: new weights give a new caption version."""
    from hfaid_core.weights import fingerprint

    files = [p for p in model_dir.iterdir()
             if p.is_file() and p.suffix in (".json", ".safetensors", ".bin")]
    return fingerprint(files)[:10]


def resolve_device(device: str) -> str:
    """"auto" -> cuda when available, else cpu; anything else is checked for existence."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise HfaidError(f"--device {device} asked for, but no CUDA device is available")
    if not (device == "cpu" or device.startswith("cuda") or device == "mps"):
        raise HfaidError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")
    return device


def resolve_dtype(dtype: str, device: str):
    """"auto" -> bfloat16 on GPUs that support it, else float16 on GPU; float32 on CPU."""
    import torch

    names = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if dtype == "auto":
        if not device.startswith("cuda"):
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if dtype not in names:
        raise HfaidError(f"unknown dtype {dtype!r}; use auto, float32, float16 or bfloat16")
    return names[dtype]


class Captioner:
    """One loaded Florence-2 model and processor; `prepare` runs on CPU, `generate` on device."""

    def __init__(self, model_dir: Path, device: str = "auto", dtype: str = "auto",
                 task: str = DEFAULT_TASK, settings: GenerationSettings | None = None) -> None:
        import torch
        from transformers import AutoProcessor, Florence2ForConditionalGeneration

        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.task = task
        self.settings = settings or GenerationSettings()
        self.generate_seconds = 0.0  # time inside model.generate (benchmarks report the rest)
        try:
            self.processor = AutoProcessor.from_pretrained(model_dir)
            self.model = Florence2ForConditionalGeneration.from_pretrained(
                model_dir, dtype=self.dtype
            ).to(self.device).eval()
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise HfaidError(f"cannot load Florence-2 from {model_dir}: {first}") from None
        tokenizer = self.processor.tokenizer
        self._eos = tokenizer.eos_token_id
        self._pad = tokenizer.pad_token_id
        self._torch = torch

    def prepare(self, images: list[Image.Image]) -> Any:
        """Pixel values and prompt ids for a batch (CPU work; safe to run in another thread)."""
        return self.processor(
            text=[self.task] * len(images), images=images, return_tensors="pt", padding=True
        )

    def generate(self, inputs: Any, sizes: list[tuple[int, int]]) -> list[CaptionResult]:
        """Captions for a prepared batch; `sizes` are the images' (width, height)."""
        torch = self._torch
        inputs = inputs.to(self.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        started = time.perf_counter()
        with torch.inference_mode():
            ids = self.model.generate(**inputs, **self.settings.generate_kwargs())
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        self.generate_seconds += time.perf_counter() - started
        return [self._decode(row, size) for row, size in zip(ids.tolist(), sizes, strict=True)]

    def caption(self, images: list[Image.Image]) -> list[CaptionResult]:
        """prepare + generate for a list of RGB images."""
        return self.generate(self.prepare(images), [im.size for im in images])

    def _decode(self, ids: list[int], size: tuple[int, int]) -> CaptionResult:
        # ids[0] is the decoder start token; the caption ends at the first end-of-sequence.
        body = ids[1:]
        try:
            n_tokens = body.index(self._eos) + 1
        except ValueError:
            n_tokens = len([t for t in body if t != self._pad])
        # Florence-2 configs force an end token at the limit, so reaching it means cut off.
        truncated = n_tokens >= self.settings.max_new_tokens
        text = self.processor.batch_decode([ids[: n_tokens + 1]], skip_special_tokens=False)[0]
        parsed = self.processor.post_process_generation(text, task=self.task, image_size=size)
        caption = str(parsed.get(self.task, "")).replace(self.processor.tokenizer.pad_token, "")
        return CaptionResult(text=caption.strip(), n_tokens=n_tokens, truncated=truncated)


def load_rgb(path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode an image file upright (EXIF orientation applied) in RGB; TooLarge above
    `max_pixels`, before any pixel is decoded."""
    from PIL import ImageOps

    with open_image(path, max_pixels) as im:
        im = ImageOps.exif_transpose(im)
        return im.convert("RGB")
