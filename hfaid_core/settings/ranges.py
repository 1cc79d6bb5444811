"""Allowed ranges of numeric settings, declared on the field and checked where a value arrives."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from hfaid_core.errors import HfaidError


def ranged(default: Any, low: float | None = None, high: float | None = None) -> Any:
    """A dataclass field whose values must lie in [low, high] (None = unbounded)."""
    return dataclasses.field(default=default, metadata={"range": (low, high)})


def field_range(cls: type, name: str) -> tuple[float | None, float | None]:
    spec = next((f for f in dataclasses.fields(cls) if f.name == name), None)
    return spec.metadata.get("range", (None, None)) if spec else (None, None)


def check_value(value: Any, low: float | None, high: float | None, where: str) -> None:
    """One-line HfaidError when a number is NaN or outside [low, high]; other types pass."""
    if not isinstance(value, int | float) or isinstance(value, bool) or (low, high) == (None, None):
        return
    inside = not math.isnan(value) and (low is None or value >= low)
    inside = inside and (high is None or value <= high)
    if not inside:
        if low is not None and high is not None:
            allowed = f"between {low:g} and {high:g}"
        else:
            allowed = f">= {low:g}" if low is not None else f"<= {high:g}"
        raise HfaidError(f"{where} = {value!r}: must be {allowed}")


def check_ranges(section: Any, where: str) -> None:
    """Every ranged field of a settings dataclass instance (nested sections are checked by
    whoever builds them)."""
    for spec in dataclasses.fields(section):
        low, high = spec.metadata.get("range", (None, None))
        check_value(getattr(section, spec.name), low, high, f"{where}.{spec.name}")


def cli_value(cls: type, name: str, value: Any, option: str) -> Any:
    """A command-line override, checked against the range of the setting it overrides."""
    if value is not None:
        check_value(value, *field_range(cls, name), option)
    return value
