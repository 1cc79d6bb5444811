"""The funnel policy: per selection stage, rules on stored metrics and how they combine."""

from __future__ import annotations

from dataclasses import dataclass, field

from curation.errors import HfaidError

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
    target_precision: float = 0.9  # thresholds learned from reviewers aim at this precision


def is_lower_better(rule: SelectRule) -> bool:
    """The rule's direction: its override, else the known metric's, else an error."""
    if rule.lower_better is not None:
        return rule.lower_better
    if rule.metric not in LOWER_BETTER:
        raise HfaidError(
            f"policy rule on unknown metric {rule.metric!r}: set lower_better = true|false "
            f"(known: {', '.join(sorted(LOWER_BETTER))})"
        )
    return LOWER_BETTER[rule.metric]


def stage_policy(policy: PolicyConfig, stage: str) -> StagePolicy:
    """The validated policy of one selection stage."""
    if stage not in INPUT_STAGE:
        raise HfaidError(f"unknown selection stage {stage!r}; use one of {', '.join(INPUT_STAGE)}")
    chosen: StagePolicy = getattr(policy, stage)
    validate(chosen, f"[policy.{stage}]")
    return chosen


def validate(sp: StagePolicy, where: str) -> None:
    """Reject contradictory or out-of-range settings with one clear line."""
    if sp.combine not in COMBINE_MODES:
        raise HfaidError(f"{where} combine = {sp.combine!r}; use one of {', '.join(COMBINE_MODES)}")
    for i, rule in enumerate(sp.rules, 1):
        at = f"{where} rule {i} ({rule.metric})"
        is_lower_better(rule)
        if rule.keep_fraction is not None and not 0 < rule.keep_fraction <= 1:
            raise HfaidError(f"{at}: keep_fraction must be in (0, 1], got {rule.keep_fraction}")
        if rule.top_k is not None and rule.top_k < 1:
            raise HfaidError(f"{at}: top_k must be >= 1, got {rule.top_k}")
        if rule.min is not None and rule.max is not None and rule.min > rule.max:
            raise HfaidError(f"{at}: min {rule.min} is above max {rule.max}")
        if sp.combine == "all" and not has_cut(rule):
            raise HfaidError(f'{at}: give min, max, keep_fraction or top_k (combine = "all")')
        if rule.weight < 0:
            raise HfaidError(f"{at}: weight must be >= 0, got {rule.weight}")
    if sp.combine == "rank_fusion":
        if (sp.keep_top_k is None) == (sp.keep_fraction is None):
            raise HfaidError(f"{where}: rank_fusion needs exactly one of keep_top_k, keep_fraction")
        if sp.keep_top_k is not None and sp.keep_top_k < 1:
            raise HfaidError(f"{where}: keep_top_k must be >= 1, got {sp.keep_top_k}")
        if sp.keep_fraction is not None and not 0 < sp.keep_fraction <= 1:
            raise HfaidError(f"{where}: keep_fraction must be in (0, 1], got {sp.keep_fraction}")
    elif sp.keep_top_k is not None or sp.keep_fraction is not None:
        raise HfaidError(f'{where}: keep_top_k/keep_fraction apply only to combine = "rank_fusion"')


def has_cut(rule: SelectRule) -> bool:
    """Whether the rule rejects anything on its own (rather than only feeding a fusion)."""
    return any(v is not None for v in (rule.min, rule.max, rule.keep_fraction, rule.top_k))


def describe_rule(rule: SelectRule) -> str:
    """A short human description such as `niqe <= 5.2` or `maniqa best 30%`."""
    parts = []
    if rule.min is not None:
        parts.append(f"{rule.metric} >= {rule.min:g}")
    if rule.max is not None:
        parts.append(f"{rule.metric} <= {rule.max:g}")
    if rule.keep_fraction is not None:
        parts.append(f"{rule.metric} best {rule.keep_fraction:.0%}")
    if rule.top_k is not None:
        parts.append(f"{rule.metric} best {rule.top_k:,}")
    return " and ".join(parts) or f"{rule.metric} (fusion only, weight {rule.weight:g})"
