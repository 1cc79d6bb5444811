"""The [finetune] config section: defaults for `hfaid finetune` and `hfaid generate`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FinetuneConfig:
    # The paper's recipe (RAP-SR section 4): AdamW 5e-5, batch 40, 3,000 steps, r = 0.8.
    # sd21-base (512 px, epsilon): what SeeSR, StableSR and DiffBIR load; sd21 (768 px,
    # v-prediction); or a diffusers folder / a hub id in the local Hugging Face cache.
    base: str = "sd21-base"
    caption_policy: str = "truncate"  # over 77 tokens: truncate | first-sentences | drop
    identifiers: str = "both"  # both | positive | none (the paper's Table 2 ablations)
    resolution: int = 512
    max_train_steps: int = 3000
    learning_rate: float = 5e-5
    train_batch_size: int = 8  # per device
    gradient_accumulation_steps: int = 5  # 8 x 5 x 1 GPU = 40
    positive_identifier: str = "[X]"
    negative_identifier: str = "[V]"
    positive_ratio: float = 0.8  # r: share of clean "[X]" samples
    empty_caption_prob: float = 0.05
    mixed_precision: str = "auto"  # auto (bf16/fp16 on CUDA, no on CPU) | no | fp16 | bf16
    num_processes: int = 1  # GPUs (accelerate launch --num_processes)
    dataloader_num_workers: int = 4  # decode + degrade processes per GPU
    checkpointing_steps: int = 500
    checkpoints_total_limit: int = 3
    use_ema: bool = False
    gradient_checkpointing: bool = False
    guidance_scale: float = 6.5  # the paper's s for `hfaid generate` (diffusers' 1 + s)
    inference_steps: int = 30
