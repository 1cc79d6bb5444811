"""The [policy] section: per selection stage, rules on stored metrics and how they combine."""

from __future__ import annotations

from dataclasses import dataclass, field

from hfaid_core.settings.ranges import ranged

# Direction of each known metric (pyiqa's `lower_better`); a rule may override it.
LOWER_BETTER: dict[str, bool] = {
    "niqe": True,
    "brisque": True,
    "maniqa": False,
    "clipiqa": False,
    "clipiqa+": False,
    "musiq": False,
    "qalign_quality": False,
    "qalign_aesthetic": False,
}

# `hfaid select --stage S` reads images that passed INPUT_STAGE[S] and writes OUTPUT_STAGE[S].
INPUT_STAGE = {"quality": "dedup", "aesthetic": "quality", "review": "aesthetic"}
OUTPUT_STAGE = {"quality": "quality", "aesthetic": "aesthetic", "review": "review_queue"}
COMBINE_MODES = ("all", "rank_fusion")


@dataclass
class SelectRule:
    metric: str
    min: float | None = None  # absolute threshold: keep value >= min
    max: float | None = None  # absolute threshold: keep value <= max
    keep_fraction: float | None = None  # keep the best fraction (0, 1] of the stage's input
    top_k: int | None = None  # keep the best k images of the stage's input
    weight: float = 1.0  # weight of this metric's z-score under combine = "rank_fusion"
    lower_better: bool | None = None  # None = the metric's known direction


@dataclass
class StagePolicy:
    combine: str = "all"  # all: every rule must pass | rank_fusion: rank by weighted z-scores
    rules: list[SelectRule] = field(default_factory=list)
    keep_top_k: int | None = None  # rank_fusion: keep the k best fused scores
    keep_fraction: float | None = None  # rank_fusion: keep the best fraction of fused scores


def _default_quality() -> StagePolicy:
    # Paper stage 2 (MANIQA, CLIP-IQA, NIQE); quantiles travel across pools better than
    # absolute numbers, and three correlated best-30% cuts keep roughly a tenth of the input.
    return StagePolicy(
        rules=[
            SelectRule("maniqa", keep_fraction=0.3),
            SelectRule("clipiqa", keep_fraction=0.3),
            SelectRule("niqe", keep_fraction=0.3),
        ]
    )


def _default_aesthetic() -> StagePolicy:
    return StagePolicy(rules=[SelectRule("qalign_aesthetic", keep_fraction=0.25)])


def _default_review() -> StagePolicy:
    # The human-review queue: the best 8,000 by fused quality + aesthetic (paper: ~5k kept).
    return StagePolicy(
        combine="rank_fusion",
        rules=[
            SelectRule("maniqa"),
            SelectRule("clipiqa"),
            SelectRule("niqe"),
            SelectRule("qalign_aesthetic", weight=2.0),
        ],
        keep_top_k=8000,
    )


@dataclass
class PolicyConfig:
    quality: StagePolicy = field(default_factory=_default_quality)
    aesthetic: StagePolicy = field(default_factory=_default_aesthetic)
    review: StagePolicy = field(default_factory=_default_review)
    # thresholds learned from reviewers aim at this precision
    target_precision: float = ranged(0.9, 0, 1)
