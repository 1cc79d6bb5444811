"""Stage-1 cuts: each measure's threshold, absolute or from pool statistics, and its explanation.

A cut is one config key of [clean] (e.g. `max_noise_sigma`) on one stored measure, with the
check it fails. Its value is the key's absolute number unless [clean.pool] names a rule:
`mad K` puts the cut K robust standard deviations (1.4826 x the median absolute deviation)
from the pool's median, `quantile Q` at the pool's Q quantile on the failing side.
Multiplicative measures (variances, ratios, sizes) get their pool statistics on log10, where
their spread is symmetric. Pool statistics are taken over every decoded image of the pool.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from hfaid_core.settings.stage1 import CleanConfig


@dataclass(frozen=True)
class Cut:
    key: str  # the [clean] key holding the absolute value
    measure: str  # stored stage-1 measure
    check: str  # outcome reason when it fails
    side: str  # "min": fails below the cut; "max": fails above; "min=": fails at or below
    log: bool  # pool statistics on log10 of the measure
    unit: str = ""  # for the outcome detail

    @property
    def op(self) -> str:
        """The comparison that fails an image, as printed: `<`, `<=` or `>`."""
        return {"min": "<", "min=": "<=", "max": ">"}[self.side]

    def fails(self, values: np.ndarray, cut: float) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            if self.side == "min":
                return values < cut
            if self.side == "min=":
                return values <= cut
            return values > cut


CUTS: tuple[Cut, ...] = (
    Cut("min_short_side", "short_side", "too_small", "min", True, " px"),
    Cut("max_aspect_ratio", "aspect_ratio", "aspect_ratio", "max", True),
    Cut("max_transparent_fraction", "transparent_fraction", "transparent", "max", False),
    Cut("min_luma_p99", "luma_p99", "too_dark", "min", False),
    Cut("max_luma_p05", "luma_p05", "too_bright", "max", False),
    Cut("min_entropy", "entropy", "low_information", "min", False, " bits"),
    Cut("gray_tolerance", "gray_delta", "grayscale", "min=", False),
    Cut("min_detail_ratio", "detail_ratio", "blurry", "min", True),
    Cut("laplacian_min", "laplacian_var", "blurry", "min", True),
    Cut("max_blockiness", "blockiness", "blocky", "max", True),
    Cut("max_noise_sigma", "noise_sigma", "noisy", "max", True),
    Cut("laplacian_max", "laplacian_var", "noisy", "max", True),
)
CUT_BY_KEY = {c.key: c for c in CUTS}
_RULE = re.compile(r"^\s*(mad|quantile)\s+([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*$")
_LOG_FLOOR = 1e-3  # log10 of a zero measure (a flat image's noise) is taken at this floor


def parse_rule(rule: str) -> tuple[str, float]:
    """("mad", K) or ("quantile", Q) from a [clean.pool] value; ValueError when malformed."""
    match = _RULE.match(rule)
    if not match:
        raise ValueError(f"{rule!r} is not `mad K` or `quantile Q`")
    kind, number = match.group(1), float(match.group(2))
    if kind == "quantile" and not 0.0 <= number < 0.5:
        raise ValueError(f"{rule!r}: the quantile must be in [0, 0.5)")
    if kind == "mad" and number <= 0:
        raise ValueError(f"{rule!r}: K must be positive")
    return kind, number


def rule_of(cut: Cut, cfg: CleanConfig) -> str:
    return cfg.pool.get(cut.key, "absolute")


def cut_value(cut: Cut, cfg: CleanConfig, pool_values: np.ndarray) -> float:
    """The threshold in the measure's units: the absolute key, or the pool rule's value."""
    rule = rule_of(cut, cfg)
    if rule == "absolute":
        return float(getattr(cfg, cut.key))
    kind, number = parse_rule(rule)
    values = pool_values[np.isfinite(pool_values)]
    if values.size == 0:
        return math.nan  # nothing measured: nothing can fail
    scaled = np.log10(np.maximum(values, _LOG_FLOOR)) if cut.log else values
    low_side = cut.side.startswith("min")
    if kind == "quantile":
        value = float(np.quantile(scaled, number if low_side else 1.0 - number))
    else:
        center = float(np.median(scaled))
        spread = 1.4826 * float(np.median(np.abs(scaled - center)))
        value = center - number * spread if low_side else center + number * spread
    return 10.0**value if cut.log else value


def explain_rows(
    values: dict[str, np.ndarray], ok: np.ndarray, cfg: CleanConfig, failed: dict[str, np.ndarray]
) -> list[dict]:
    """Per cut: the measure's distribution over decoded images, the rule, the cut, and how many
    images it fails (`fails`) and fails alone (`only`: what dropping the cut would let through)."""
    stack = np.array([failed[c.key] for c in CUTS]) if CUTS else np.zeros((0, len(ok)), bool)
    fail_count = stack.sum(axis=0)
    rows = []
    for k, cut in enumerate(CUTS):
        measured = values[cut.measure][ok]
        finite = measured[np.isfinite(measured)]
        quantiles = (
            np.quantile(finite, [0.0, 0.01, 0.05, 0.5, 0.95, 0.99, 1.0])
            if finite.size
            else [math.nan] * 7
        )
        rows.append(
            {
                "cut": cut.key,
                "measure": cut.measure,
                "check": cut.check,
                "rule": rule_of(cut, cfg),
                "value": cut_value(cut, cfg, measured),
                "fails_when": cut.op,
                "measured": int(finite.size),
                **dict(zip(("min", "p1", "p5", "median", "p95", "p99", "max"),
                           (float(q) for q in quantiles), strict=True)),
                "fails": int(stack[k].sum()),
                "only": int((stack[k] & (fail_count == 1)).sum()),
            }
        )
    return rows
