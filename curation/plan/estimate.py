"""What a recipe will cost before it runs: per step, images in and out (the catalog's measured
pass rates, else the [policy]'s fractions), the rate (the catalog's own runs on the planned
hardware, else the measured table rates.toml), wall time, GPU-hours and reviewer hours."""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

from db.catalog import Catalog
from db.images import image_counts
from db.outcomes import funnel
from db.runs import finished_runs
from hfaid_core.errors import HfaidError
from hfaid_core.settings.policy import INPUT_STAGE, OUTPUT_STAGE, PolicyConfig, StagePolicy

# GPU kinds by the words in a device name, most specific first (l40s before l40 before l4).
GPU_KINDS = ("h200", "h100", "a100", "l40s", "l40", "l4", "a10")
MIN_RUN_IMAGES = 50  # smaller runs time model loading more than images
VOTES_PER_IMAGE = 2  # the two-reviewer rule (splits add an admin's decision, not counted)
CPU_STEPS = ("ingest", "clean", "dedup", "select", "export")


@dataclass(frozen=True)
class PlanStep:
    """What the estimator needs of a recipe step."""

    name: str
    kind: str  # ingest clean dedup score select await-reviews caption export; else not estimated
    stage_in: str | None = None  # score/caption/await-reviews/export: the stage it reads
    select_stage: str | None = None  # select: quality | aesthetic | review
    metrics: tuple[str, ...] = ()  # score


@dataclass
class PlanRow:
    step: str
    kind: str
    images_in: int
    images_out: int
    out_from: str  # catalog | policy | assumed | -
    device: str  # gpu | cpu | people | -
    rate: float | None  # images/s per device (people: votes/h)
    rate_from: str
    wall_hours: float
    gpu_hours: float = 0.0
    human_hours: float = 0.0
    notes: list[str] = field(default_factory=list)


def load_rates() -> dict[str, Any]:
    return tomllib.loads(resources.files("curation.plan").joinpath("rates.toml").read_text())


def gpu_kind(name: str) -> str | None:
    """h100, a100, ... from a device name such as "NVIDIA H100 80GB HBM3"; cpu for "cpu"."""
    text = name.lower().replace("nvidia", "").replace("-", "").replace(" ", "")
    if text == "cpu":
        return "cpu"
    return next((k for k in GPU_KINDS if k in text), None)


class RateTable:
    """img/s per metric (and `caption`) on one kind of device: measured rows, or H100 rows
    scaled by a spec-sheet ratio, overridden by what this catalog's runs measured."""

    def __init__(self, kind: str, runs: list[dict[str, Any]], rates: dict[str, Any]) -> None:
        devices, scaled = rates["device"], rates["scaled_from_h100"]
        self.kind = kind
        date = rates["measured"]["date"]
        if kind in devices:
            self.table = {k: v for k, v in devices[kind].items() if isinstance(v, int | float)}
            self.table_from = kind
            self.described = (f"measured on {devices[kind]['machine']}, {date} "
                              f"({rates['measured']['page']})")
        elif kind in scaled:
            factor = scaled[kind]
            self.table = {k: v * factor for k, v in devices["h100"].items()
                          if isinstance(v, int | float)}
            self.table_from = f"h100 x{factor:g}"
            self.described = (f"H100 rates ({date}) x {factor:g}, the spec-sheet BF16 ratio of "
                              f"{kind} to H100: an assumption, not a measurement")
        else:
            known = ", ".join(["cpu", *devices.keys() - {"cpu"}, *scaled])
            raise HfaidError(f"--gpu {kind!r}: no rates for it; known: {known}")
        self.runs = [r for r in runs if _run_kind(r) == kind]

    def score_rate(self, metrics: tuple[str, ...]) -> tuple[float | None, str]:
        """Images/s of one job scoring `metrics` (their times add up: an upper bound)."""
        exact = self._measured("score", lambda r: tuple(sorted(r["config"].get("metrics", [])))
                               == tuple(sorted(metrics)))
        if exact:
            return exact
        seconds, sources = 0.0, set()
        for m in metrics:
            rate, source = self._measured("score", lambda r, m=m: r["config"].get("metrics") == [m]
                                          ) or (self.table.get(m), self.table_from)
            if not rate:
                return None, f"no measured rate for {m} on {self.kind}"
            seconds += 1.0 / rate
            sources.add(source)
        return 1.0 / seconds, "; ".join(sorted(sources))

    def caption_rate(self) -> tuple[float | None, str]:
        found = self._measured("caption", lambda r: True)
        if found:
            return found
        rate = self.table.get("caption")
        return rate, self.table_from if rate else f"no measured caption rate on {self.kind}"

    def _measured(self, command: str, match) -> tuple[float, str] | None:
        chosen = [r for r in self.runs if r["command"] == command and match(r)]
        images = sum(_images(r) for r in chosen)
        seconds = sum(float(r["counts"].get("seconds") or 0) for r in chosen)
        if images < MIN_RUN_IMAGES or seconds <= 0:
            return None
        return images / seconds, f"catalog, {len(chosen)} run(s)"


def _images(run: dict[str, Any]) -> int:
    counts = run["counts"]
    return int(counts.get("pending_images") or counts.get("images") or 0)


def _run_kind(run: dict[str, Any]) -> str | None:
    device = str(run["config"].get("device", ""))
    if device == "cpu":
        return "cpu"
    return gpu_kind(str(run["config"].get("gpu", ""))) if device.startswith("cuda") else None


@dataclass
class CatalogFacts:
    """What the catalog measured: pass rate per stage, CPU rates of its own runs."""

    images: int = 0
    pass_rate: dict[str, float] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)


def catalog_facts(catalog: Catalog | None) -> CatalogFacts:
    if catalog is None or not catalog.path.exists():
        return CatalogFacts()
    facts = CatalogFacts(images=image_counts(catalog)["images"])
    for s in funnel(catalog)["stages"]:
        if s["stage"] == "review":
            decided = s["passed"] + s["rejected"]
            if decided:
                facts.pass_rate["review"] = s["passed"] / decided
        elif s["seen"]:
            facts.pass_rate[s["stage"]] = (s.get("passed_through", 0) + s["passed"]) / s["seen"]
    facts.runs = finished_runs(catalog, ("score", "caption", "ingest", "clean"))
    return facts


def estimate(steps: list[PlanStep], pool: int, gpus: int, kind: str, cpus: int,
             policy: PolicyConfig, votes_per_hour: float, catalog: Catalog | None = None
             ) -> dict[str, Any]:
    """The plan as a dict: the rows, the totals, and what the numbers came from."""
    if pool < 0 or gpus < 1 or cpus < 1 or votes_per_hour <= 0:
        raise HfaidError("--pool must be >= 0, --gpus and --cpus >= 1, votes per hour > 0")
    rates = load_rates()
    facts = catalog_facts(catalog)
    table = RateTable(kind, facts.runs, rates)
    cpu_scale = cpus / rates["cpu_stages"]["cores"]
    passed: dict[str | None, int] = {None: pool}
    rows = []
    for step in steps:
        row = _row(step, passed, table, facts, policy, rates, cpu_scale, gpus, votes_per_hour)
        rows.append(row)
    totals = {
        "gpu_hours": sum(r.gpu_hours for r in rows),
        "scoring_gpu_hours": sum(r.gpu_hours for r in rows if r.kind == "score"),
        "wall_hours": sum(r.wall_hours for r in rows),
        "human_hours": sum(r.human_hours for r in rows),
    }
    return {"pool": pool, "gpus": gpus, "gpu": kind, "cpus": cpus,
            "rates_from": table.described, "votes_per_hour": votes_per_hour,
            "steps": [asdict(r) for r in rows], "totals": totals}


def _row(step: PlanStep, passed: dict[str | None, int], table: RateTable, facts: CatalogFacts,
         policy: PolicyConfig, rates: dict[str, Any], cpu_scale: float, gpus: int,
         votes_per_hour: float) -> PlanRow:
    assumed = rates["assumed_pass"]
    if step.kind in ("ingest", "clean", "dedup"):
        before = {"ingest": None, "clean": "ingest", "dedup": "clean"}[step.kind]
        n_in = passed.get(before, passed[None]) if before else passed[None]
        share, out_from = _share(step.kind, facts, assumed[step.kind])
        n_out = round(n_in * share)
        passed[step.kind] = n_out
        if step.kind == "ingest":
            passed["all"] = n_out
        return _cpu_row(step, n_in, n_out, out_from, rates, cpu_scale, facts)
    if step.kind == "select" and step.select_stage in INPUT_STAGE:
        n_in = passed.get(INPUT_STAGE[step.select_stage], 0)
        n_out, out_from = _selected(step.select_stage, n_in, policy, facts)
        passed[OUTPUT_STAGE[step.select_stage]] = n_out
        return _cpu_row(step, n_in, n_out, out_from, rates, cpu_scale, facts)
    if step.kind == "score":
        n_in = passed.get(step.stage_in, passed.get("ingest", passed[None]))
        passed["score"] = n_in
        rate, source = table.score_rate(step.metrics)
        return _device_row(step, n_in, n_in, rate, source, table.kind, gpus, cpu_scale)
    if step.kind == "caption":
        n_in = passed.get(step.stage_in, 0)
        passed["caption"] = n_in
        rate, source = table.caption_rate()
        return _device_row(step, n_in, n_in, rate, source, table.kind, gpus, cpu_scale)
    if step.kind == "await-reviews":
        n_in = passed.get(step.stage_in, 0)
        share, out_from = _share("review", facts, assumed["review"])
        n_out = round(n_in * share)
        passed["review"] = n_out
        hours = n_in * VOTES_PER_IMAGE / votes_per_hour
        return PlanRow(step.name, step.kind, n_in, n_out, out_from, "people", votes_per_hour,
                       "recipe", 0.0, human_hours=hours)
    if step.kind == "export":
        n_in = passed.get(step.stage_in, 0)
        return _cpu_row(step, n_in, n_in, "-", rates, cpu_scale, facts)
    return PlanRow(step.name, step.kind, 0, 0, "-", "-", None, "not estimated", 0.0)


def _share(stage: str, facts: CatalogFacts, fallback: float) -> tuple[float, str]:
    if stage in facts.pass_rate:
        return facts.pass_rate[stage], "catalog"
    return fallback, "assumed"


def _selected(stage: str, n_in: int, policy: PolicyConfig, facts: CatalogFacts
              ) -> tuple[int, str]:
    sp: StagePolicy = getattr(policy, stage)
    fixed = sp.combine == "rank_fusion" and sp.keep_top_k is not None
    measured = facts.pass_rate.get(OUTPUT_STAGE[stage])
    if measured is not None and not fixed:  # a top-k keeps a count, not a share of the input
        return round(n_in * measured), "catalog"
    gates = [r for r in sp.rules if any(v is not None for v in (r.min, r.max, r.keep_fraction,
                                                                 r.top_k))]
    shares = [r.keep_fraction if r.keep_fraction is not None
              else min(1.0, r.top_k / n_in) if r.top_k is not None and n_in else 1.0
              for r in gates]
    eligible = n_in * _combined(shares)
    if sp.combine == "rank_fusion":
        keep = (min(sp.keep_top_k, eligible) if sp.keep_top_k is not None
                else eligible * (sp.keep_fraction or 1.0))
    else:
        keep = eligible
    absolute = any(r.keep_fraction is None and r.top_k is None for r in gates)
    return round(keep), "policy?" if absolute else "policy"  # ?: absolute cuts, share unknown


def _combined(shares: list[float]) -> float:
    """Share of images passing several cuts at once: between independent metrics (the product)
    and identical ones (the smallest share); the geometric mean of the two."""
    if not shares:
        return 1.0
    return math.sqrt(math.prod(shares) * min(shares))


def _cpu_row(step: PlanStep, n_in: int, n_out: int, out_from: str, rates: dict[str, Any],
             cpu_scale: float, facts: CatalogFacts) -> PlanRow:
    kind = step.kind if step.kind in CPU_STEPS else "select"
    measured = _cpu_measured(kind, facts)
    if measured:
        rate, source = measured
    else:
        rate = rates["cpu_stages"][kind] * cpu_scale
        source = f"cpu x{cpu_scale:g}"
    return PlanRow(step.name, step.kind, n_in, n_out, out_from, "cpu", rate, source,
                   n_in / rate / 3600 if rate else 0.0)


def _cpu_measured(kind: str, facts: CatalogFacts) -> tuple[float, str] | None:
    """ingest/clean rates from this catalog's own runs (this machine)."""
    key = {"ingest": "read", "clean": "measured"}.get(kind)
    if key is None:
        return None
    runs = [r for r in facts.runs if r["command"] == kind]
    images = sum(int(r["counts"].get(key) or 0) for r in runs)
    seconds = sum(float(r["counts"].get("seconds") or 0) for r in runs)
    if images < MIN_RUN_IMAGES or seconds <= 0:
        return None
    return images / seconds, f"catalog, {len(runs)} run(s)"


def _device_row(step: PlanStep, n_in: int, n_out: int, rate: float | None, source: str,
                kind: str, gpus: int, cpu_scale: float) -> PlanRow:
    if not rate:
        return PlanRow(step.name, step.kind, n_in, n_out, "-", kind, None, source, 0.0,
                       notes=[source])
    hours = n_in / rate / 3600
    if kind == "cpu":
        return PlanRow(step.name, step.kind, n_in, n_out, "-", "cpu", rate * cpu_scale, source,
                       hours / cpu_scale)
    return PlanRow(step.name, step.kind, n_in, n_out, "-", "gpu", rate, source, hours / gpus,
                   gpu_hours=hours)
