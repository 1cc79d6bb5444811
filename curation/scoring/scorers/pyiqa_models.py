"""Learned metrics through pyiqa's architectures: MANIQA, CLIP-IQA, CLIP-IQA+, MUSIQ."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial, wraps
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
from curation.scoring.scorers.compat import install_import_shims, timm_without_download
from curation.scoring.scorers.precision import autocast_to_float32
from hfaid_core.weights import WeightSpec, register_weights

# pyiqa's release files (chaofengc/IQA-PyTorch-Weights) and OpenAI's CLIP RN50.
MANIQA_FILE = "ckpt_koniq10k.pt"
MUSIQ_FILE = "musiq_koniq_ckpt-e95806b9.pth"
CLIP_FILE = "RN50.pt"
CLIPIQA_PLUS_FILE = "CLIP-IQA+_learned_prompts-603f3273.pth"
MANIQA_LAST_BLOCK = 9  # pyiqa 0.1.16 MANIQA.extract_feature: save_output.outputs[6..9]


def _download(files: dict[str, str], dest: Path) -> None:
    """Fetch each (file name -> URL) into dest, skipping files already there."""
    for name, url in files.items():
        target = dest / name
        if not target.is_file():
            torch.hub.download_url_to_file(url, str(target), progress=True)


def _pyiqa_url(name: str) -> str:
    from pyiqa.archs.arch_util import get_url_from_name

    return get_url_from_name(name)


def _clip_url() -> str:
    install_import_shims()
    from pyiqa.archs.clip_model import _MODELS

    return _MODELS["RN50"]


def fetch_maniqa(dest: Path) -> None:
    _download({MANIQA_FILE: _pyiqa_url(MANIQA_FILE)}, dest)


def fetch_musiq(dest: Path) -> None:
    _download({MUSIQ_FILE: _pyiqa_url(MUSIQ_FILE)}, dest)


def fetch_clipiqa(dest: Path, plus: bool = False) -> None:
    files = {CLIP_FILE: _clip_url()}
    if plus:
        files[CLIPIQA_PLUS_FILE] = _pyiqa_url(CLIPIQA_PLUS_FILE)
    _download(files, dest)


def load_checkpoint(module: torch.nn.Module, path: Path) -> None:
    """pyiqa's loading path: torch.load, optional 'params' key, cleaned keys, strict load."""
    from pyiqa.archs.arch_util import clean_state_dict

    state = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(state, dict) and "params" in state:
        state = state["params"]
    module.load_state_dict(clean_state_dict(state), strict=True)


def build_maniqa(ctx: BuildContext) -> BuiltModel:
    from pyiqa.archs.maniqa_arch import MANIQA

    arch = dict(ctx.options.get("arch", {}))
    backbone = arch.pop("backbone", {})
    # pyiqa's `maniqa` defaults: KonIQ checkpoint, scale 0.8, 20 uniform 224px crops.
    with timm_without_download(**backbone):
        net = MANIQA(train_dataset="koniq", scale=0.8, pretrained=False, **arch)
    load_checkpoint(net, ctx.weights / MANIQA_FILE)
    # MANIQA reads only ViT blocks 6-9 (forward hooks; `extract_feature`), yet runs all 12 and
    # the head. Dropping the unused tail after loading skips 1/6 of the ViT, results unchanged.
    net.vit.blocks = net.vit.blocks[: MANIQA_LAST_BLOCK + 1]
    module = net.to(ctx.device, ctx.dtype).eval()
    # pyiqa's forward crops and scores in one call; split, the crops of images of any size
    # (20 x 224 px each) join into one batch.
    return BuiltModel(
        forward=lambda crops: maniqa_on_crops(module, crops).reshape(-1),
        module=module,
        prepare=partial(maniqa_crops, module, dtype=ctx.dtype),
        join=torch.cat,
    )


def maniqa_crops(
    net: torch.nn.Module, x: torch.Tensor, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """pyiqa 0.1.16 MANIQA.forward's input step (eval): normalised, then `test_sample` uniform
    224 px crops per image, as (N, crops, 3, 224, 224). Images as decoded (uint8) are cropped
    first and only the crops become floats: the same values (both steps are per pixel), without
    a float copy of the whole image. pyiqa upsamples an image whose short side is <= 224 first,
    so those take its order exactly."""
    from pyiqa.archs.arch_util import uniform_crop

    if x.dtype != torch.uint8 or min(x.shape[-2:]) <= 224:
        x = unit_float(x, dtype)
        x = (x - net.default_mean.to(x)) / net.default_std.to(x)
        crops = uniform_crop(x, crop_size=224, crop_num=net.test_sample)
    else:
        crops = unit_float(uniform_crop(x, crop_size=224, crop_num=net.test_sample), dtype)
        crops = (crops - net.default_mean.to(crops)) / net.default_std.to(crops)
    return crops.reshape(x.shape[0], net.test_sample, *crops.shape[1:])


def _maniqa_stage(x: torch.Tensor, tablocks, conv, swin, side: int) -> torch.Tensor:
    """One of MANIQA's two stages: TABlocks over (b, c, h*w), then conv and Swin over h x w."""
    from einops import rearrange

    for tab in tablocks:
        x = tab(x)
    return swin(conv(rearrange(x, "b c (h w) -> b c h w", h=side, w=side)))


def maniqa_on_crops(net: torch.nn.Module, crops: torch.Tensor) -> torch.Tensor:
    """pyiqa 0.1.16 MANIQA.forward after its input step: the same operations in order (its two
    identical stages through one helper)."""
    from einops import rearrange

    bsz = crops.shape[0]
    x = crops.reshape(-1, *crops.shape[2:])
    net.vit(x)
    x = net.extract_feature(net.save_output)
    net.save_output.outputs.clear()
    side = net.input_size
    x = rearrange(x, "b (h w) c -> b c (h w)", h=side, w=side)
    x = _maniqa_stage(x, net.tablock1, net.conv1, net.swintransformer1, side)
    x = rearrange(x, "b c h w -> b c (h w)", h=side, w=side)
    x = _maniqa_stage(x, net.tablock2, net.conv2, net.swintransformer2, side)
    x = rearrange(x, "b c h w -> b (h w) c", h=side, w=side)
    per_patch_score = net.fc_score(x).reshape(bsz, -1)
    per_patch_weight = net.fc_weight(x).reshape(bsz, -1)
    score = (per_patch_weight * per_patch_score).sum(dim=-1) / (
        per_patch_weight.sum(dim=-1) + 1e-8
    )
    return score.unsqueeze(1)


def build_musiq(ctx: BuildContext) -> BuiltModel:
    from pyiqa.archs.musiq_arch import MUSIQ

    net = MUSIQ(pretrained=False, num_class=1, **ctx.options.get("arch", {}))
    load_checkpoint(net, ctx.weights / MUSIQ_FILE)
    module = net.to(ctx.device, ctx.dtype).eval()
    # pyiqa's forward makes the tokens and runs the model in one call; split, the runner can
    # join the tokens of images of several sizes into one batch (`join_tokens`).
    return BuiltModel(
        forward=lambda tokens: musiq_on_tokens(module, tokens).reshape(-1),
        module=module,
        prepare=partial(musiq_tokens, module),
        join=join_tokens,
    )


def musiq_tokens(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """pyiqa 0.1.16 MUSIQ.forward's input step: multi-scale patches of [0, 1] images with their
    spatial and scale positions and a mask, (N, tokens, 3 * patch**2 + 3)."""
    from pyiqa.data.multiscale_trans_util import get_multiscale_patches

    return get_multiscale_patches((x - 0.5) * 2, **net.data_preprocess_opts)


def join_tokens(parts: list[torch.Tensor]) -> torch.Tensor:
    """Token batches of images of several sizes as one batch. The shorter sequences get zeros
    at the end: mask 0 (the last column), which attention masks out, the way pyiqa pads each
    scale's tokens, so every image keeps its own score."""
    longest = max(part.shape[1] for part in parts)
    padded = [torch.nn.functional.pad(p, (0, 0, 0, longest - p.shape[1])) for p in parts]
    return padded[0] if len(padded) == 1 else torch.cat(padded)


def musiq_on_tokens(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """pyiqa 0.1.16 MUSIQ.forward after its input step, line for line (one crop per image)."""
    from pyiqa.archs.musiq_arch import dist_to_mos

    b, seq_len, _ = x.shape
    inputs_spatial_positions = x[:, :, -3]
    inputs_scale_positions = x[:, :, -2]
    inputs_masks = x[:, :, -1].bool()
    x = x[:, :, :-3]
    x = x.reshape(-1, 3, net.patch_size, net.patch_size)
    x = net.conv_root(x)
    x = net.gn_root(x)
    x = net.root_pool(x)
    x = net.block1(x)
    x = x.permute(0, 2, 3, 1)  # pyiqa: to match tensorflow's channel order
    x = x.reshape(b, seq_len, -1)
    x = net.embedding(x)
    x = net.transformer_encoder(x, inputs_spatial_positions, inputs_scale_positions, inputs_masks)
    return dist_to_mos(net.head(x[:, 0]))


def same_arguments_same_result(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """fn, computed once for the same argument objects and then returned again (inference only:
    the result must depend on nothing that changes, such as fixed prompts under fixed weights)."""
    last: dict[str, Any] = {}

    @wraps(fn)
    def run(*args: Any) -> torch.Tensor:
        key = tuple(map(id, args))
        if last.get("key") != key:
            last.update(key=key, result=fn(*args), args=args)  # args kept: ids stay theirs
        return last["result"]

    return run


def build_clipiqa(ctx: BuildContext, plus: bool = False) -> BuiltModel:
    install_import_shims()
    from pyiqa.archs.clipiqa_arch import CLIPIQA

    # pyiqa's load() takes a checkpoint path (JIT archive or state dict) instead of a hub name.
    net = CLIPIQA(
        model_type="clipiqa+" if plus else "clipiqa",
        backbone=str(ctx.weights / CLIP_FILE),
        pretrained=False,
    )
    if plus:
        ctx_vectors = torch.load(
            ctx.weights / CLIPIQA_PLUS_FILE, map_location="cpu", weights_only=False
        )
        net.prompt_learner.ctx.data = ctx_vectors.to(net.prompt_learner.ctx.dtype)
    # CLIPIQA keeps the CLIP model outside its parameters and casts all of it to the input's
    # dtype on every call, while CLIP's LayerNorm casts its input to float32: a bf16 CLIP fails.
    # So the weights stay float32 and half precision comes from autocast (LayerNorm in fp32),
    # around the two encoders only: the cosine-similarity logits (x100) in bf16 would move in
    # steps of 0.125 and the score in steps of ~0.03, so they are computed in float32.
    clip = net.clip_model[0].to(ctx.device)
    net.clip_model[0] = clip
    if ctx.dtype in (torch.float16, torch.bfloat16):
        clip.encode_image = autocast_to_float32(clip.encode_image, ctx.device.type, ctx.dtype)
        clip.encode_text = autocast_to_float32(clip.encode_text, ctx.device.type, ctx.dtype)
        if plus:  # the learned prompts run CLIP's text transformer themselves
            learner = net.prompt_learner
            learner.forward = autocast_to_float32(learner.forward, ctx.device.type, ctx.dtype)
    # pyiqa encodes its fixed prompts again on every batch: 8.6% of a CPU batch of 8 at 512x384,
    # 1.7% at 1080x800 (full-size RN50). Weights and prompts never change once built.
    net.prompt_pairs = net.prompt_pairs.to(ctx.device)  # so that forward's .to() keeps it
    clip.encode_text = same_arguments_same_result(clip.encode_text)
    if plus:
        net.prompt_learner.forward = same_arguments_same_result(net.prompt_learner.forward)
    module = net.to(ctx.device, torch.float32).eval()

    def forward(x: torch.Tensor) -> torch.Tensor:
        return module(x.float()).float().reshape(-1)

    return BuiltModel(forward=forward, module=module)


MANIQA = ScorerSpec(
    name="maniqa",
    description="MANIQA (KonIQ), 20 uniform 224px crops of the full image",
    lower_better=False,
    score_range=(0.0, 1.0),
    input_policy=InputPolicy(mode="full", min_side=224),
    build=build_maniqa,
    weights="maniqa",
    batches_mixed_sizes=True,  # its 20 crops per image are 224 px whatever the image's size
    takes_uint8=True,  # only its crops become floats
    bytes_per_pixel=4,  # 20 crops whatever the size: ~2.5 GB of attention, not per pixel
    half_ok=True,
    float32_modules=("fc_score", "fc_weight"),  # per-patch score and weight heads
    default_batch_size=4,
    # Each image is already a batch of 20 crops; more images only multiply MANIQA's 3072x3072
    # channel-attention matrices (20 crops: 750 MB each) through the cache.
    cpu_batch_size=1,
)
CLIPIQA = ScorerSpec(
    name="clipiqa",
    description="CLIP-IQA (RN50, antonym prompt pairs), full resolution",
    lower_better=False,
    score_range=(0.0, 1.0),
    input_policy=InputPolicy(mode="full", min_side=32),
    build=build_clipiqa,
    weights="clipiqa",
    bytes_per_pixel=250,  # RN50 activations at full resolution (2-8 MP: 160-250)
    half_ok=True,
    default_batch_size=8,
    # CPU, real-size RN50, model only: 3.2 img/s at batch 1, 2.0-2.3 at batch 8 (512x384), and
    # 0.53 vs 0.35 at 1080x800. Batch 8 paid only while the prompts were encoded per batch.
    cpu_batch_size=1,
)
CLIPIQA_PLUS = ScorerSpec(
    name="clipiqa+",
    description="CLIP-IQA+ (RN50, learned prompts), full resolution",
    lower_better=False,
    score_range=(0.0, 1.0),
    input_policy=InputPolicy(mode="full", min_side=32),
    build=partial(build_clipiqa, plus=True),
    weights="clipiqa+",
    bytes_per_pixel=250,  # RN50 activations at full resolution (2-8 MP: 160-250)
    half_ok=True,
    default_batch_size=8,
    cpu_batch_size=1,  # as CLIP-IQA: batch 8 is 0.64x / 0.74x of batch 1 per image on CPU
)
MUSIQ = ScorerSpec(
    name="musiq",
    description="MUSIQ (KonIQ), multi-scale patches of the full image",
    lower_better=False,
    score_range=(0.0, 100.0),
    input_policy=InputPolicy(mode="full", min_side=32),
    build=build_musiq,
    weights="musiq",
    batches_mixed_sizes=True,  # its tokens carry a mask (join_tokens)
    bytes_per_pixel=300,  # multi-scale patches of the full image and their tokens
    half_ok=False,
    float32_modules=("head",),  # for an explicit --dtype bfloat16
    default_batch_size=8,
    cpu_batch_size=1,  # CPU, 640x480 and smaller: 3.3 img/s at batch 1, 2.6 at batch 8
)


def _register() -> None:
    from curation.scoring.scorers import register_scorer

    register_weights(
        WeightSpec(
            "maniqa",
            [MANIQA_FILE],
            fetch_maniqa,
            "MANIQA KonIQ checkpoint (includes its ViT-B/8 backbone)",
        )
    )
    register_weights(WeightSpec("musiq", [MUSIQ_FILE], fetch_musiq, "MUSIQ KonIQ checkpoint"))
    register_weights(WeightSpec("clipiqa", [CLIP_FILE], fetch_clipiqa, "OpenAI CLIP RN50"))
    register_weights(
        WeightSpec(
            "clipiqa+",
            [CLIP_FILE, CLIPIQA_PLUS_FILE],
            partial(fetch_clipiqa, plus=True),
            "OpenAI CLIP RN50 + CLIP-IQA+ learned prompts",
        )
    )
    for spec in (MANIQA, CLIPIQA, CLIPIQA_PLUS, MUSIQ):
        register_scorer(spec)


_register()
