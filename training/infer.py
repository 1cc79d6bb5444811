"""Identifier-guided text-to-image: CFG with prompt "[X] caption" and negative "[V] caption"."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from hfaid_core.errors import HfaidError

POSITIVE_IDENTIFIER = "[X]"
NEGATIVE_IDENTIFIER = "[V]"
DEFAULT_GUIDANCE = 6.5  # paper's s; diffusers' guidance_scale = 1 + s = 7.5, its usual default
ROPO_FILE = "hfaid_ropo.json"  # written next to model_index.json by training/train_ropo.py
# Which identifiers the prompts carry: the paper's Table 2 prompt ablations. A side without its
# identifier gets the bare caption (prompt) or nothing (negative: plain CFG's unconditional).
IDENTIFIER_MODES = ("both", "positive", "negative", "none")
# Training: without the negative identifier a degraded sample would teach the bare caption to
# mean "degraded", so "positive" and "none" train on clean samples only.
TRAIN_IDENTIFIER_MODES = ("both", "positive", "none")


def with_identifier(identifier: str, caption: str) -> str:
    """`"[X] " + caption`; an empty caption gives the bare identifier."""
    return f"{identifier} {caption.strip()}".strip()


def check_identifier_mode(mode: str, modes: tuple[str, ...] = IDENTIFIER_MODES) -> str:
    if mode not in modes:
        raise HfaidError(f"--identifiers must be one of {', '.join(modes)}, got {mode!r}")
    return mode


def prompt_pair(caption: str, mode: str = "both", positive: str = POSITIVE_IDENTIFIER,
                negative: str = NEGATIVE_IDENTIFIER) -> tuple[str, str]:
    """(prompt, negative prompt) of one caption: both "[X] c" / "[V] c"; positive "[X] c" / "";
    negative "c" / "[V] c"; none "c" / "" (classifier-free guidance without identifiers)."""
    check_identifier_mode(mode)
    prompt = with_identifier(positive if mode in ("both", "positive") else "", caption)
    negative_prompt = with_identifier(negative, caption) if mode in ("both", "negative") else ""
    return prompt, negative_prompt


def diffusers_guidance_scale(s: float) -> float:
    """Map the paper's s to diffusers' g.

    Paper: eps = eps_pos + s (eps_pos - eps_neg). diffusers: eps = eps_neg + g (eps_pos - eps_neg)
    = eps_pos + (g - 1)(eps_pos - eps_neg), so g = 1 + s. diffusers skips the negative branch
    when g <= 1, which is exactly s = 0 (eps = eps_pos); s < 0 has no diffusers equivalent.
    """
    if s < 0:
        raise HfaidError(f"--guidance-scale must be >= 0 (the paper's s), got {s}")
    return 1.0 + s


def read_identifiers(model_dir: Path) -> tuple[str, str, str]:
    """The identifiers a refined model was trained with and their mode (defaults for others)."""
    path = Path(model_dir) / ROPO_FILE
    meta = json.loads(path.read_text()) if path.is_file() else {}
    return (meta.get("positive_identifier", POSITIVE_IDENTIFIER),
            meta.get("negative_identifier", NEGATIVE_IDENTIFIER),
            meta.get("identifiers", "both"))


def load_pipeline(model_dir: Path, device: str | None = None, dtype=None):
    """A StableDiffusionPipeline from a diffusers folder, on `device` (CUDA when available)."""
    import torch
    from diffusers import StableDiffusionPipeline

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = dtype or (torch.float16 if device.startswith("cuda") else torch.float32)
    pipeline = StableDiffusionPipeline.from_pretrained(str(model_dir))
    pipeline.set_progress_bar_config(disable=True)
    pipeline.to(device)
    if dtype != torch.float32:  # weights are saved in fp32; cast only when asked to
        pipeline.to(dtype=dtype)
    return pipeline


def generate_images(pipeline, captions: Sequence[str], guidance_scale: float = DEFAULT_GUIDANCE,
                    num_inference_steps: int = 30, seed: int = 0, resolution: int | None = None,
                    positive_identifier: str = POSITIVE_IDENTIFIER,
                    negative_identifier: str = NEGATIVE_IDENTIFIER, output_type: str = "pil",
                    identifiers: str = "both"):
    """One image per caption, guided away from the negative prompt by the paper's s; which
    identifiers the prompts carry follows `identifiers` (`prompt_pair`)."""
    import torch

    pairs = [prompt_pair(c, identifiers, positive_identifier, negative_identifier)
             for c in captions]
    prompts, negatives = [p for p, _ in pairs], [n for _, n in pairs]
    # A CPU generator makes the starting noise identical on every device.
    generator = torch.Generator("cpu").manual_seed(seed)
    result = pipeline(
        prompt=prompts, negative_prompt=negatives,
        guidance_scale=diffusers_guidance_scale(guidance_scale),
        num_inference_steps=num_inference_steps, height=resolution, width=resolution,
        generator=generator, output_type=output_type,
    )
    return result.images


def generate_to_folder(model_dir: Path, captions: Sequence[str], output: Path,
                       guidance_scale: float = DEFAULT_GUIDANCE, num_inference_steps: int = 30,
                       seed: int = 0, resolution: int | None = None, batch_size: int = 4,
                       device: str | None = None, identifiers: str | None = None) -> list[Path]:
    """Generate and save `output/NNNN.png` (+ prompts.jsonl); returns the image paths.
    `identifiers`: a mode of IDENTIFIER_MODES, by default the one the model was trained with."""
    if not captions:
        raise HfaidError("give at least one caption (--prompt or --prompts-file)")
    if not (Path(model_dir) / "model_index.json").is_file():
        raise HfaidError(f"--model {model_dir} is not a diffusers model (no model_index.json)")
    positive, negative, trained_mode = read_identifiers(model_dir)
    mode = check_identifier_mode(identifiers or trained_mode)
    diffusers_guidance_scale(guidance_scale)  # reject a bad scale before loading the model
    pipeline = load_pipeline(model_dir, device)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    with (output / "prompts.jsonl").open("a") as log:
        for start in range(0, len(captions), batch_size):
            chunk = list(captions[start:start + batch_size])
            images = generate_images(pipeline, chunk, guidance_scale, num_inference_steps,
                                     seed + start, resolution, positive, negative,
                                     identifiers=mode)
            for i, (caption, image) in enumerate(zip(chunk, images, strict=True)):
                path = output / f"{start + i:04d}.png"
                image.save(path)
                paths.append(path)
                prompt, negative_prompt = prompt_pair(caption, mode, positive, negative)
                log.write(json.dumps({
                    "file": path.name, "prompt": prompt, "negative_prompt": negative_prompt,
                    "identifiers": mode,
                    "guidance_scale_s": guidance_scale, "seed": seed + start,
                    "steps": num_inference_steps,
                }) + "\n")
    return paths
