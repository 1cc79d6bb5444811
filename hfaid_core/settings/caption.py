"""The [caption] config section: model, device, batching, generation and check settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from hfaid_core.settings.ranges import ranged


@dataclass
class CaptionConfig:
    model: str = "florence-community/Florence-2-large"  # hub id, florence2-base|large, or a folder
    task: str = "<MORE_DETAILED_CAPTION>"  # Florence-2 task token; must be the whole prompt
    stage_input: str = "review"  # caption images that passed this stage ("all" = every image)
    batch_size: int = ranged(8, 1)  # images per generate call
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto (bf16/fp16 on GPU, fp32 on CPU) | float32 | float16 | bfloat16
    shard_size: int = ranged(64, 1)  # images per result file (resume granularity)
    num_beams: int = ranged(3, 1)  # Florence-2's published decoding
    max_new_tokens: int = ranged(256, 1)  # a caption reaching this is flagged `truncated`
    # Re-captioning flagged captions uses different settings (and so a different version).
    recaption_num_beams: int = ranged(5, 1)
    recaption_max_new_tokens: int = ranged(512, 1)
    recaption_repetition_penalty: float = ranged(1.3, 1)
    recaption_no_repeat_ngram_size: int = ranged(3, 0)
    # Checks.
    min_words: int = ranged(8, 0)  # fewer words -> `too_short`
    ngram: int = ranged(3, 1)  # n-gram size for `repetitive`
    max_ngram_repeats: int = ranged(3, 1)  # one n-gram more often than this -> `repetitive`
    max_repeated_share: float = ranged(0.5, 0, 1)  # or this share of all n-grams are repeats
    extra_boilerplate: list[str] = field(default_factory=list)  # phrases added to the built-in list
