"""Captions longer than the text encoder reads: counted before training, handled by a policy."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from hfaid_core.errors import HfaidError

CAPTION_POLICIES = ("truncate", "first-sentences", "drop")
DEFAULT_CAPTION_POLICY = "truncate"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass
class CaptionPlan:
    """What a policy does to the over-long captions of a training set."""

    policy: str
    total: int
    max_tokens: int  # the text encoder's window, start and end tokens included
    too_long: int = 0
    # caption key -> the caption to train with instead, or None for a dropped sample
    overrides: dict[str, str | None] = field(default_factory=dict)
    cut_mid_sentence: int = 0  # first-sentences: captions whose first sentence alone is too long
    longest: int = 0  # tokens of the longest caption, identifier included

    @property
    def dropped(self) -> set[str]:
        return {k for k, v in self.overrides.items() if v is None}

    def summary(self) -> str:
        """One line for the console and the training log: never a silent cut."""
        head = (f"{self.too_long:,} of {self.total:,} captions exceed the text encoder's "
                f"{self.max_tokens} tokens with the identifier (longest {self.longest})")
        if not self.too_long:
            return head
        action = {
            "truncate": "cut at the token limit",
            "first-sentences": "shortened to the whole sentences that fit"
            + (f" ({self.cut_mid_sentence:,} still cut: their first sentence is too long)"
               if self.cut_mid_sentence else ""),
            "drop": "those samples are left out",
        }[self.policy]
        return f"{head}; --caption-policy {self.policy}: {action}"


def check_policy(policy: str) -> str:
    if policy not in CAPTION_POLICIES:
        raise HfaidError(f"--caption-policy must be one of {', '.join(CAPTION_POLICIES)}, "
                         f"got {policy!r}")
    return policy


def token_counts(tokenizer, texts: list[str]) -> list[int]:
    """Tokens per text with the start and end tokens, as the encoder would see them uncut."""
    if not texts:
        return []
    ids = tokenizer(texts, truncation=False, add_special_tokens=True,
                    verbose=False).input_ids
    return [len(x) for x in ids]


def plan_captions(captions: dict[str, str], tokenizer, prefixes: list[str],
                  policy: str) -> CaptionPlan:
    """Count captions that do not fit after the longest identifier prefix, and what the policy
    makes of them. `prefixes`: the identifiers a caption may get ("" for none)."""
    from training.infer import with_identifier

    check_policy(policy)
    limit = int(tokenizer.model_max_length)
    prefix = max(prefixes or [""], key=lambda p: token_counts(tokenizer, [p])[0])
    keys = list(captions)
    counts = token_counts(tokenizer, [with_identifier(prefix, captions[k]) for k in keys])
    plan = CaptionPlan(policy, len(keys), limit, longest=max(counts, default=0))
    for key, count in zip(keys, counts, strict=True):
        if count <= limit:
            continue
        plan.too_long += 1
        if policy == "drop":
            plan.overrides[key] = None
        elif policy == "first-sentences":
            kept = first_sentences(captions[key], tokenizer, prefix, limit)
            plan.cut_mid_sentence += kept is None
            if kept is not None:
                plan.overrides[key] = kept
    if plan.total and len(plan.dropped) == plan.total:
        raise HfaidError(f"--caption-policy drop leaves no sample: all {plan.total:,} captions "
                         f"exceed {limit} tokens; use truncate or first-sentences")
    return plan


def first_sentences(caption: str, tokenizer, prefix: str, limit: int) -> str | None:
    """The longest run of leading whole sentences that fits with the prefix; None when even the
    first sentence does not (the tokenizer then cuts it, as `truncate` would)."""
    from training.infer import with_identifier

    sentences = [s for s in _SENTENCE_END.split(caption.strip()) if s]
    texts = [" ".join(sentences[:n]) for n in range(1, len(sentences) + 1)]
    counts = token_counts(tokenizer, [with_identifier(prefix, t) for t in texts])
    fitting = [t for t, c in zip(texts, counts, strict=True) if c <= limit]
    return fitting[-1] if fitting else None
