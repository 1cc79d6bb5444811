"""The funnel policy's rules: validation, metric directions and how a rule reads to a person."""

from __future__ import annotations

from hfaid_core.errors import HfaidError
from hfaid_core.settings.policy import (
    COMBINE_MODES,
    INPUT_STAGE,
    LOWER_BETTER,
    PolicyConfig,
    SelectRule,
    StagePolicy,
)


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
