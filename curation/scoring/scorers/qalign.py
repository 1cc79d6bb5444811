"""Q-Align (mPLUG-Owl2) quality and aesthetics, batched, with exact level-to-score arithmetic."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import torch

from curation.scoring.scorers.base import BuildContext, BuiltModel, InputPolicy, ScorerSpec
from curation.scoring.scorers.compat import install_import_shims
from hfaid_core.errors import HfaidError
from hfaid_core.weights import WeightSpec, register_weights

HUB_ID = "q-future/one-align"
LEVEL_WORDS = ("excellent", "good", "fair", "poor", "bad")
LEVEL_WEIGHTS = (5.0, 4.0, 3.0, 2.0, 1.0)
# The official Q-Align prompt; task "aesthetics" as in Q-Align's scorer (pyiqa: "aesthetic").
PROMPT = (
    "USER: How would you rate the {task} of this image?\n<|image|>\n"
    "ASSISTANT: The {task} of the image is"
)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGE_SIZE = 448
REQUIRED_FILES = ["config.json", "tokenizer.model", "preprocessor_config.json"]


def levels_to_score(level_logits: torch.Tensor) -> torch.Tensor:
    """softmax over the logits of [excellent, good, fair, poor, bad] @ [5, 4, 3, 2, 1] (float64)."""
    weights = torch.tensor(LEVEL_WEIGHTS, dtype=torch.float64, device=level_logits.device)
    return torch.softmax(level_logits.to(torch.float64), dim=-1) @ weights


def fetch_qalign(dest: Path) -> None:
    from huggingface_hub import snapshot_download

    snapshot_download(HUB_ID, local_dir=dest)


def _patch_for_transformers5() -> None:
    """pyiqa's vendored abstractor calls `invert_attention_mask`, gone in transformers 5."""
    from pyiqa.archs.q_align import visual_encoder

    def invert_attention_mask(self, mask: torch.Tensor) -> torch.Tensor:
        ext = mask[:, None, :, :] if mask.dim() == 3 else mask[:, None, None, :]
        ext = ext.to(dtype=self.dtype)
        return (1.0 - ext) * torch.finfo(self.dtype).min

    cls = visual_encoder.MplugOwlVisualAbstractorModel
    if not hasattr(cls, "invert_attention_mask"):
        cls.invert_attention_mask = invert_attention_mask


class _LocalName:
    """Stands in for a transformers class inside pyiqa's module: the hub id becomes our folder."""

    def __init__(self, real: Any, folder: Path) -> None:
        self.real, self.folder = real, folder

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def from_pretrained(self, name: str, *args: Any, **kwargs: Any) -> Any:
        kwargs.pop("trust_remote_code", None)
        return self.real.from_pretrained(str(self.folder), *args, **kwargs)


@contextmanager
def hub_names_resolve_to(folder: Path) -> Iterator[Any]:
    """pyiqa's mPLUG-Owl2 module, with the tokenizer and image processor it loads by hub id
    (in its constructor) read from `folder` instead, for as long as the block runs."""
    from pyiqa.archs.q_align import modeling_mplug_owl2 as owl
    from transformers import CLIPImageProcessor, LlamaTokenizer

    saved = owl.LlamaTokenizer, owl.CLIPImageProcessor
    owl.LlamaTokenizer = _LocalName(LlamaTokenizer, folder)
    owl.CLIPImageProcessor = _LocalName(CLIPImageProcessor, folder)
    try:
        yield owl
    finally:
        owl.LlamaTokenizer, owl.CLIPImageProcessor = saved


_LOCK = threading.Lock()
_MODELS: dict[tuple, Any] = {}  # quality and aesthetics share one loaded model


def load_mplug_owl2(
    folder: Path, device: torch.device, dtype: torch.dtype, quantize: str | None = None
) -> Any:
    """mPLUG-Owl2 from a local folder through pyiqa's vendored code, never the hub."""
    key = _model_key(folder, device, dtype, quantize)
    with _LOCK:
        if key in _MODELS:
            return _MODELS[key]
        install_import_shims()
        _patch_for_transformers5()
        kwargs: dict[str, Any] = {"dtype": dtype}
        if quantize:
            try:
                import bitsandbytes  # noqa: F401
                from transformers import BitsAndBytesConfig
            except ImportError:
                raise HfaidError(
                    f"--quantize {quantize} needs bitsandbytes (pip install bitsandbytes)"
                ) from None
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=quantize == "4bit",
                load_in_8bit=quantize == "8bit",
                bnb_4bit_compute_dtype=dtype,
                bnb_4bit_quant_type="nf4",
            )
            kwargs["device_map"] = {"": device}
        with hub_names_resolve_to(folder) as owl:
            model = owl.MPLUGOwl2LlamaForCausalLM.from_pretrained(str(folder), **kwargs)
        if not quantize:
            model = model.to(device)
        _MODELS[key] = last_token_float32_head(model.eval())
        return model


def _model_key(folder: Path, device: torch.device, dtype: torch.dtype, quantize: str | None):
    return (str(folder), str(device), str(dtype), quantize)


def adopt_model(folder: Path, device: torch.device, dtype: torch.dtype, model: Any) -> None:
    """Use an already built model for `folder` (benchmarks build a full-size random one)."""
    _patch_for_transformers5()
    with _LOCK:
        _MODELS[_model_key(folder, device, dtype, None)] = last_token_float32_head(model.eval())


def last_token_float32_head(model: Any) -> Any:
    """The LM head computes float32 logits, for the last position only (all a score reads).

    In bf16 the level logits (~10-25) would move in steps of 0.06-0.125, the score by up to
    ~0.05; and logits over the 32k vocabulary at every position are ~2% of the forward's work.
    A quantized model's head is left alone unless it is a plain Linear layer.
    """
    head = model.lm_head
    if type(head) is torch.nn.Linear and not getattr(head, "_hfaid_last_token", False):
        head.float().register_forward_pre_hook(_last_position_in_float32)
        head._hfaid_last_token = True
    return model


def _last_position_in_float32(_head: torch.nn.Module, args: tuple) -> tuple:
    hidden, *rest = args
    return (hidden[:, -1:].float(), *rest)


def prompt_ids(model: Any, task: str) -> torch.Tensor:
    from pyiqa.archs.q_align.modeling_mplug_owl2 import IMAGE_TOKEN_INDEX, tokenizer_image_token

    return tokenizer_image_token(
        PROMPT.format(task=task), model.tokenizer, IMAGE_TOKEN_INDEX, return_tensors="pt"
    )


def level_token_ids(model: Any) -> list[int]:
    # The level word is the last id (newer Llama tokenizers prepend no BOS).
    return [ids[-1] for ids in model.tokenizer(list(LEVEL_WORDS))["input_ids"]]


def build_qalign(ctx: BuildContext, task: str) -> BuiltModel:
    model = load_mplug_owl2(ctx.weights, ctx.device, ctx.dtype, ctx.options.get("quantize"))
    ids = prompt_ids(model, task).to(ctx.device)
    levels = level_token_ids(model)
    mean = torch.tensor(CLIP_MEAN, device=ctx.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=ctx.device).view(1, 3, 1, 1)

    def forward(x: torch.Tensor) -> torch.Tensor:
        # One prompt, repeated: every row has the same length, so a batch needs no padding.
        pixels = ((x.float() - mean) / std).to(ctx.dtype)
        logits = model(ids.unsqueeze(0).repeat(x.shape[0], 1), images=pixels)["logits"]
        return levels_to_score(logits[:, -1, levels])

    return BuiltModel(forward=forward)


def _spec(name: str, task: str) -> ScorerSpec:
    return ScorerSpec(
        name=name,
        description=f"Q-Align {task} (mPLUG-Owl2, one-align), padded to a 448 square",
        lower_better=False,
        score_range=(1.0, 5.0),
        # Q-Align pads to a square with the CLIP mean colour, then the CLIP processor resizes.
        input_policy=InputPolicy(
            mode="pad_square",
            size=IMAGE_SIZE,
            min_side=8,
            fill=tuple(int(c * 255) for c in CLIP_MEAN),
        ),
        build=partial(build_qalign, task=task),
        weights="qalign",
        half_ok=True,
        default_batch_size=16,
        supported_options=("quantize",),
    )


QALIGN_QUALITY = _spec("qalign_quality", "quality")
QALIGN_AESTHETIC = _spec("qalign_aesthetic", "aesthetics")


def _register() -> None:
    from curation.scoring.scorers import register_scorer

    register_weights(
        WeightSpec(
            "qalign",
            REQUIRED_FILES,
            fetch_qalign,
            f"Q-Align one-align (mPLUG-Owl2, ~16 GB) from {HUB_ID}",
        )
    )
    register_scorer(QALIGN_QUALITY)
    register_scorer(QALIGN_AESTHETIC)


_register()
