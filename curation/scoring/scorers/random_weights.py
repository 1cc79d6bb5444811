"""Random-weight checkpoints in each metric's real file layout, for offline tests and benchmarks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from curation.scoring.scorers import pyiqa_models, qalign
from curation.scoring.scorers.compat import install_import_shims, timm_without_download

# Tiny architectures that keep pyiqa's classes and loading code but run in well under a second.
TINY_ARCH: dict[str, dict[str, Any]] = {
    "musiq": {"hidden_size": 32, "mlp_dim": 64, "num_heads": 2, "num_layers": 1},
    "maniqa": {
        "embed_dim": 32,
        "dim_mlp": 32,
        "num_heads": [2, 2],
        "depths": [1, 1],
        "test_sample": 4,
        "backbone": {"embed_dim": 32, "depth": 10, "num_heads": 2, "mlp_ratio": 2.0},
    },
}


def write_musiq(folder: Path, arch: dict[str, Any] | None = None, seed: int = 0) -> Path:
    from pyiqa.archs.musiq_arch import MUSIQ

    torch.manual_seed(seed)
    net = MUSIQ(pretrained=False, num_class=1, **(arch or {}))
    return _save(net.state_dict(), folder / "musiq" / pyiqa_models.MUSIQ_FILE)


def write_maniqa(folder: Path, arch: dict[str, Any] | None = None, seed: int = 0) -> Path:
    from pyiqa.archs.maniqa_arch import MANIQA

    arch = dict(arch or {})
    backbone = arch.pop("backbone", {})
    torch.manual_seed(seed)
    with timm_without_download(**backbone):
        net = MANIQA(train_dataset="koniq", scale=0.8, pretrained=False, **arch)
    return _save({"params": net.state_dict()}, folder / "maniqa" / pyiqa_models.MANIQA_FILE)


# OpenAI CLIP RN50's real shape (what clip.model.build_model reads off RN50.pt), and a tiny one.
CLIP_RN50 = {
    "embed_dim": 1024,
    "image_resolution": 224,
    "vision_layers": (3, 4, 6, 3),
    "vision_width": 64,
    "transformer_width": 512,
    "transformer_heads": 8,
    "transformer_layers": 12,
}
CLIP_TINY = {
    "embed_dim": 32,
    "image_resolution": 64,
    "vision_layers": (1, 1, 1, 1),
    "vision_width": 8,
    "transformer_width": 64,
    "transformer_heads": 1,
    "transformer_layers": 1,
}


def random_clip(seed: int = 0, real_size: bool = False) -> torch.nn.Module:
    """An RN50-layout CLIP (ModifiedResNet + text transformer), tiny unless real_size."""
    install_import_shims()
    from pyiqa.archs.clip_model import CLIP

    torch.manual_seed(seed)
    shape = CLIP_RN50 if real_size else CLIP_TINY
    model = CLIP(vision_patch_size=None, context_length=77, vocab_size=49408, **shape)
    return model.eval()


def write_clipiqa(
    folder: Path, plus: bool = False, seed: int = 0, real_size: bool = False
) -> Path:
    name = "clipiqa+" if plus else "clipiqa"
    # OpenAI ships RN50.pt as a TorchScript archive, and pyiqa's loader only reads state dicts
    # from such archives correctly; trace one so the file has the real format.
    model = random_clip(seed, real_size)
    side = model.visual.input_resolution
    path = folder / name / pyiqa_models.CLIP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    traced = torch.jit.trace_module(
        model, {"encode_image": (torch.rand(1, 3, side, side), torch.tensor(True))}
    )
    traced.save(str(path))
    if plus:
        torch.manual_seed(seed + 1)
        width = model.transformer.width
        _save(torch.randn(16, width) * 0.02, folder / name / pyiqa_models.CLIPIQA_PLUS_FILE)
    return path


def write_qalign(folder: Path, seed: int = 0) -> Path:
    """A tiny mPLUG-Owl2 (Llama 2 layers, width 32; ViT 1 layer) with the toy tokenizer of
    `_write_qalign_processing`."""
    install_import_shims()
    from pyiqa.archs.q_align.configuration_mplug_owl2 import (
        MPLUGOwl2Config,
        MplugOwlVisionConfig,
        MplugOwlVisualAbstractorConfig,
    )

    target = _write_qalign_processing(folder)
    vision = MplugOwlVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=qalign.IMAGE_SIZE,
        patch_size=14,
    ).to_dict()
    abstractor = MplugOwlVisualAbstractorConfig(
        num_learnable_queries=8,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        encoder_hidden_size=32,
    ).to_dict()
    config = MPLUGOwl2Config(
        visual_config={"visual_model": vision, "visual_abstractor": abstractor},
        vocab_size=120,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
    )
    torch.manual_seed(seed)
    _new_mplug_owl2(config, target).save_pretrained(target)
    return target


def _write_qalign_processing(folder: Path) -> Path:
    """folder/qalign with a trained-on-the-spot SentencePiece tokenizer whose vocabulary holds the
    five level words as single tokens, and the CLIP image processor; no config, no weights."""
    import sentencepiece as spm
    from transformers import CLIPImageProcessor

    target = folder / "qalign"
    target.mkdir(parents=True, exist_ok=True)
    corpus = target / "corpus.txt"
    words = "USER How would you rate the quality aesthetics of this image ASSISTANT The is"
    corpus.write_text("\n".join([words] * 50 + ["abcdefghijklmnopqrstuvwxyz ?:.,"] * 10))
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(target / "tokenizer"),
        vocab_size=120,
        model_type="bpe",
        user_defined_symbols=list(qalign.LEVEL_WORDS),
        bos_id=1,
        eos_id=2,
        unk_id=0,
        pad_id=-1,
        character_coverage=1.0,
        minloglevel=2,
    )
    corpus.unlink()
    (target / "tokenizer.vocab").unlink(missing_ok=True)
    CLIPImageProcessor(
        size={"shortest_edge": qalign.IMAGE_SIZE},
        crop_size={"height": qalign.IMAGE_SIZE, "width": qalign.IMAGE_SIZE},
        image_mean=list(qalign.CLIP_MEAN),
        image_std=list(qalign.CLIP_STD),
    ).save_pretrained(target)
    return target


def adopt_full_size_qalign(folder: Path, device: torch.device, dtype: torch.dtype) -> Path:
    """The real one-align architecture (mPLUG-Owl2: LLaMA-2-7B + ViT-L/14 at 448, pyiqa's
    config defaults) with random weights, built on `device` and handed to the Q-Align loader's
    cache, so scoring with weights_dir=folder uses it. For GPU throughput benchmarks: writing and
    re-reading 16 GB would only time the disk (the loading path is tested with write_qalign).
    """
    from pyiqa.archs.q_align.configuration_mplug_owl2 import MPLUGOwl2Config

    target = _write_qalign_processing(folder)
    config = MPLUGOwl2Config()
    config.save_pretrained(target)
    torch.manual_seed(0)
    with torch.device(device):
        model = _new_mplug_owl2(config, target)
    # Tensors made from numpy in the constructor stay on the CPU; move everything, as the
    # loader does after from_pretrained.
    model = model.to(device, dtype)
    qalign.adopt_model(target, device, dtype, model)
    return target


def _new_mplug_owl2(config: Any, folder: Path) -> torch.nn.Module:
    """A randomly initialised mPLUG-Owl2; its constructor loads the tokenizer from `folder`."""
    install_import_shims()
    with qalign.hub_names_resolve_to(folder) as owl:
        return owl.MPLUGOwl2LlamaForCausalLM(config)


def _save(obj: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    return path
