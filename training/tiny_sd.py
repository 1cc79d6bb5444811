"""A tiny random-weight Stable Diffusion folder for smoke tests, the demo and benchmarks."""

from __future__ import annotations

from pathlib import Path

# A toy CLIP BPE vocabulary (the one transformers' CLIP tokenizer tests use), plus the pieces
# of "[x]" and "[v]" so the two identifiers tokenize differently; everything else is <unk>.
_TOY_VOCAB = [
    "l", "o", "w", "e", "r", "s", "t", "i", "d", "n", "lo", "l</w>", "w</w>", "r</w>", "t</w>",
    "low</w>", "er</w>", "lowest</w>", "newer</w>", "wider", "<unk>", "<|startoftext|>",
    "<|endoftext|>", "[</w>", "]</w>", "[", "]", "x</w>", "v</w>", "x", "v", "a</w>", "cat</w>",
]
_TOY_MERGES = [("l", "o"), ("lo", "w</w>"), ("e", "r</w>")]


def build_tiny_pipeline(out_dir: Path, seed: int = 0, sample_size: int = 32,
                        prediction_type: str = "epsilon"):
    """Save diffusers' SD2 test-sized pipeline (random weights, toy tokenizer) to `out_dir`;
    `prediction_type` "epsilon" (like SD 2.1-base) or "v_prediction" (like SD 2.1)."""
    import torch
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    # Configurations from diffusers' tests/pipelines/stable_diffusion_2 (fast tests).
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=2, sample_size=sample_size // 2,
        in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, attention_head_dim=(2, 4), use_linear_projection=True,
        norm_num_groups=32,
    )
    vae = AutoencoderKL(
        block_out_channels=[32, 64], in_channels=3, out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4, sample_size=sample_size * 4, norm_num_groups=32,
    )
    # Two VAE blocks make latents 1/2 of the image (SD's are 1/8); the pipeline and the training
    # script read the factor from the VAE config, so any even size works.
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, eos_token_id=2, hidden_size=32, intermediate_size=37,
        layer_norm_eps=1e-05, num_attention_heads=4, num_hidden_layers=5, pad_token_id=1,
        vocab_size=1000, hidden_act="gelu", projection_dim=512,
    ))
    tokenizer = CLIPTokenizer(
        vocab={token: i for i, token in enumerate(_TOY_VOCAB)}, merges=_TOY_MERGES,
        unk_token="<unk>", model_max_length=77,
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        clip_sample=False, set_alpha_to_one=False, steps_offset=1,
        prediction_type=prediction_type,
    )
    pipeline = StableDiffusionPipeline(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    out_dir = Path(out_dir)
    pipeline.save_pretrained(out_dir)
    return out_dir
