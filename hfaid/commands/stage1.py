"""`hfaid clean` (decode check and stage-1 measurements) and `hfaid dedup` (pHash groups)."""

from __future__ import annotations

import dataclasses
import time
from typing import Annotated

import typer

from hfaid.app import app
from hfaid.options import CatalogOpt, ConfigOpt, open_for_writing, recorded_run
from hfaid.output import print_summary
from hfaid_core.config import RunnerConfig
from hfaid_core.errors import HfaidError
from hfaid_core.settings.ranges import cli_value
from hfaid_core.settings.stage1 import DedupConfig

WorkersOpt = Annotated[
    int | None, typer.Option(help="Decode processes [default: [runner] workers].")
]


@app.command()
def clean(workers: WorkersOpt = None, catalog: CatalogOpt = None, config: ConfigOpt = None) -> None:
    """Decode-check and measure ingested images once, then apply the [clean] thresholds to all."""
    from curation.stage1.clean import clean as run_clean
    from curation.stage1.clean import measure_version, validate
    from db.outcomes import write_outcomes

    cat, cfg = open_for_writing(catalog, config)
    cli_value(RunnerConfig, "workers", workers, "--workers")
    validate(cfg.clean)
    settings = {
        "clean": cfg.section("clean"),
        "decode": cfg.section("decode"),
        "runner": cfg.section("runner"),
        "measure_version": measure_version(cfg.clean),
    }
    with recorded_run(cat, "clean", settings) as run:
        stats, outcomes = run_clean(
            cat,
            # one pixel budget for every decode: [decode] max_pixels, if lower, bounds clean too
            dataclasses.replace(cfg.clean, max_pixels=min(cfg.clean.max_pixels,
                                                          cfg.decode.max_pixels)),
            run.run_id,
            workers if workers is not None else cfg.runner.workers,
            cfg.runner.shard_size,
        )
        started = time.perf_counter()
        write_outcomes(cat, outcomes, run.run_id)
        statuses = outcomes.column("status").to_pylist()
        reasons: dict[str, int] = {}
        for status, reason in zip(statuses, outcomes.column("reason").to_pylist(), strict=True):
            if status != "pass":
                reasons[reason] = reasons.get(reason, 0) + 1
        run.counts = {
            "measured": stats.items,
            "decided": outcomes.num_rows,
            "passed": statuses.count("pass"),
            "rejected": statuses.count("reject"),
            "errors": statuses.count("error"),
            "reasons": reasons,
            "seconds": round(stats.seconds + time.perf_counter() - started, 2),
        }
    rows = {
        "measured now (decoded)": stats.items,
        "decided (all measured images)": outcomes.num_rows,
        "passed": statuses.count("pass"),
        "rejected": statuses.count("reject"),
        "errors": statuses.count("error"),
    }
    rows.update({f"  {r}": n for r, n in sorted(reasons.items(), key=lambda kv: -kv[1])})
    rows["seconds"] = run.counts["seconds"]
    rows["images/s decoded"] = stats.items / stats.seconds if stats.seconds else 0.0
    print_summary(f"clean {cat.path}", rows)


@app.command()
def dedup(
    max_distance: Annotated[
        int | None,
        typer.Option(
            "--max-distance",
            help="Hamming distance for near-duplicates [default: [dedup] max_distance].",
        ),
    ] = None,
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Group near-duplicate pHashes among clean-passed images; keep one per group."""
    from curation.stage1.clean import PHASH_VERSION, measure_version
    from curation.stage1.dedup import plan_dedup
    from db.stage1 import clean_passed_without_hash, dedup_candidates, replace_dedup

    cat, cfg = open_for_writing(catalog, config)
    k = cfg.dedup.max_distance if max_distance is None else max_distance
    cli_value(DedupConfig, "max_distance", max_distance, "--max-distance")
    missing = clean_passed_without_hash(cat, PHASH_VERSION)
    if missing:
        raise HfaidError(f"{missing} clean-passed image(s) have no pHash; run `hfaid clean` first")
    settings = {
        "dedup": {**cfg.section("dedup"), "max_distance": k},
        "phash_version": PHASH_VERSION,
    }
    with recorded_run(cat, "dedup", settings) as run:
        started = time.perf_counter()
        candidates = dedup_candidates(cat, measure_version(cfg.clean), PHASH_VERSION)
        groups, outcomes, counts = plan_dedup(candidates, k)
        replace_dedup(cat, groups, outcomes, run.run_id)
        counts["seconds"] = round(time.perf_counter() - started, 2)
        run.counts = counts
    print_summary(
        f"dedup {cat.path} (pHash distance <= {k})",
        {
            "clean-passed images": counts["images"],
            "pairs within distance": counts["pairs_within_k"],
            "near-duplicate groups": counts["groups"],
            "kept": counts["kept"],
            "rejected as near-duplicates": counts["rejected"],
            "seconds": counts["seconds"],
        },
    )
