"""Caption checks: empty, too short, repetitive, cut off at the token limit, boilerplate."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

# Flag names, in the order they are reported (the first one becomes the outcome's reason).
FLAGS = ("empty", "truncated", "repetitive", "too_short", "boilerplate")

_WORD = re.compile(r"[\w']+")

# Phrases that carry no content about the image; Florence-2 and web captions produce them.
DEFAULT_BOILERPLATE = [
    "stock photo", "stock image", "royalty free", "image may contain", "no description",
    "click to enlarge", "shutterstock", "getty images", "alamy", "watermark",
    "lorem ipsum", "this image is unavailable", "placeholder",
]


@dataclass
class CheckSettings:
    min_words: int = 8  # a detailed caption shorter than this is not detailed
    ngram: int = 3  # n-gram size for the repetition check
    max_ngram_repeats: int = 3  # the same n-gram more often than this is degenerate
    max_repeated_share: float = 0.5  # or: this share of n-grams are repeats
    boilerplate: list[str] = field(default_factory=lambda: list(DEFAULT_BOILERPLATE))


def check_caption(text: str | None, truncated: bool, settings: CheckSettings) -> list[str]:
    """Flags for one caption (empty list = looks fine), in FLAGS order."""
    text = (text or "").strip()
    if not text:
        return ["empty"]
    flags = []
    if truncated:
        flags.append("truncated")
    words = [w.lower() for w in _WORD.findall(text)]
    s = settings
    if is_repetitive(words, s.ngram, s.max_ngram_repeats, s.max_repeated_share):
        flags.append("repetitive")
    if len(words) < settings.min_words:
        flags.append("too_short")
    lowered = text.lower()
    if any(phrase.lower() in lowered for phrase in settings.boilerplate):
        flags.append("boilerplate")
    return flags


def is_repetitive(words: list[str], n: int, max_repeats: int, max_share: float) -> bool:
    """Degenerate decoding: one n-gram repeated too often, or most n-grams are repeats."""
    if len(words) < n:
        return False
    grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    total = sum(grams.values())
    repeated = total - len(grams)
    # One word looping ("the the the ...") shows up as a single n-gram counted many times.
    return max(grams.values()) > max_repeats or (total >= 4 * n and repeated / total > max_share)
