"""The evaluation's metrics: Table 1's rows, their direction and precision, versions, weights."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from curation.evaluate.fullref import FULL_REFERENCE, fullref_version
from hfaid_core.errors import HfaidError

# The paper's Table 1 rows (PSNR .. BRISQUE), then NIQE (its Table 3 and SeeSR's Table 2).
TABLE_METRICS = ("psnr", "ssim", "lpips", "maniqa", "musiq", "clipiqa", "brisque", "niqe")
# Decimals as the papers print them.
_DIGITS = {"psnr": 2, "musiq": 2, "brisque": 2, "niqe": 3}
_LABELS = {"clipiqa": "CLIPIQA", "clipiqa+": "CLIPIQA+"}


@dataclass(frozen=True)
class EvalMetric:
    name: str
    lower_better: bool
    fullref: bool
    weights: str | None  # weights spec name, None when nothing needs fetching

    @property
    def label(self) -> str:
        return _LABELS.get(self.name, self.name.upper())

    @property
    def digits(self) -> int:
        return _DIGITS.get(self.name, 4)


def eval_metric(name: str) -> EvalMetric:
    """A full-reference metric of this package, or any no-reference metric of the registry."""
    if name in FULL_REFERENCE:
        spec = FULL_REFERENCE[name]
        return EvalMetric(name, spec.lower_better, True, spec.weights)
    from curation.scoring.scorers import get_scorer_spec, list_scorers

    try:
        spec = get_scorer_spec(name)
    except HfaidError:
        known = list(FULL_REFERENCE) + [s.name for s in list_scorers()]
        raise HfaidError(f"unknown metric {name!r}; known: {', '.join(known)}") from None
    return EvalMetric(name, spec.lower_better, False, spec.weights)


def parse_metrics(text: str | list[str]) -> list[EvalMetric]:
    names = [n.strip() for n in text.split(",")] if isinstance(text, str) else list(text)
    names = [n for n in names if n]
    if not names:
        raise HfaidError("--metrics: name at least one metric")
    return [eval_metric(n) for n in dict.fromkeys(names)]


def metric_versions(metrics: list[EvalMetric], shave: int, device: str,
                    weights_root: Path | str | None
                    ) -> tuple[dict[str, tuple[str, bool]], dict[str, str]]:
    """metric -> (version, full-reference) for the metrics that can run here, and metric ->
    a note for those that cannot (weights missing): their rows say so, the rest still run."""
    from curation.scoring.scorers import get_scorer_spec, scorer_version
    from curation.scoring.scorers.precision import compute_dtype

    versions: dict[str, tuple[str, bool]] = {}
    notes: dict[str, str] = {}
    for metric in metrics:
        try:
            if metric.fullref:
                version = fullref_version(metric.name, shave, weights_root)
            else:
                spec = get_scorer_spec(metric.name)
                dtype = compute_dtype(spec, torch.device(device), None)
                version = scorer_version(spec, weights_root, None, dtype)
        except HfaidError:
            notes[metric.name] = (f"weights missing: `hfaid weights fetch {metric.weights}` "
                                  "on a machine with network")
            continue
        versions[metric.name] = (version, metric.fullref)
    return versions, notes
