"""The [finetune] config section: defaults for `hfaid finetune` and `hfaid generate`."""

from __future__ import annotations

from dataclasses import dataclass

from hfaid_core.settings.ranges import ranged


@dataclass
class FinetuneConfig:
    # The paper's recipe (RAP-SR section 4): AdamW 5e-5, batch 40, 3,000 steps, r = 0.8.
    # sd21-base (512 px, epsilon): what SeeSR, StableSR and DiffBIR load; sd21 (768 px,
    # v-prediction); or a diffusers folder / a hub id in the local Hugging Face cache.
    base: str = "sd21-base"
    caption_policy: str = "truncate"  # over 77 tokens: truncate | first-sentences | drop
    identifiers: str = "both"  # both | positive | none (the paper's Table 2 ablations)
    resolution: int = ranged(512, 8)
    max_train_steps: int = ranged(3000, 1)
    learning_rate: float = ranged(5e-5, 0)
    train_batch_size: int = ranged(8, 1)  # per device
    gradient_accumulation_steps: int = ranged(5, 1)  # 8 x 5 x 1 GPU = 40
    positive_identifier: str = "[X]"
    negative_identifier: str = "[V]"
    positive_ratio: float = ranged(0.8, 0, 1)  # r: share of clean "[X]" samples
    empty_caption_prob: float = ranged(0.05, 0, 1)
    mixed_precision: str = "auto"  # auto (bf16/fp16 on CUDA, no on CPU) | no | fp16 | bf16
    num_processes: int = ranged(1, 1)  # GPUs (accelerate launch --num_processes)
    dataloader_num_workers: int = ranged(4, 0)  # decode + degrade processes per GPU
    checkpointing_steps: int = ranged(500, 1)
    checkpoints_total_limit: int = ranged(3, 1)
    use_ema: bool = False
    gradient_checkpointing: bool = False
    guidance_scale: float = ranged(6.5, 0)  # the paper's s for `hfaid generate` (diffusers' 1 + s)
    inference_steps: int = ranged(30, 1)
