"""The [caption] config section: model, device, batching, generation and check settings."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CaptionConfig:
    model: str = "florence-community/Florence-2-large"  # hub id, florence2-base|large, or a folder
    task: str = "<MORE_DETAILED_CAPTION>"  # Florence-2 task token; must be the whole prompt
    stage_input: str = "review"  # caption images that passed this stage ("all" = every image)
    batch_size: int = 8  # images per generate call
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto (bf16/fp16 on GPU, fp32 on CPU) | float32 | float16 | bfloat16
    shard_size: int = 64  # images per result file (resume granularity)
    num_beams: int = 3  # Florence-2's published decoding
    max_new_tokens: int = 256  # a caption reaching this is flagged `truncated`
    # Re-captioning flagged captions uses different settings (and so a different version).
    recaption_num_beams: int = 5
    recaption_max_new_tokens: int = 512
    recaption_repetition_penalty: float = 1.3
    recaption_no_repeat_ngram_size: int = 3
    # Checks.
    min_words: int = 8  # fewer words -> `too_short`
    ngram: int = 3  # n-gram size for `repetitive`
    max_ngram_repeats: int = 3  # one n-gram more often than this -> `repetitive`
    max_repeated_share: float = 0.5  # or this share of all n-grams are repeats
    extra_boilerplate: list[str] = field(default_factory=list)  # phrases added to the built-in list
