"""`hfaid clean` (decode check, stage-1 measurements, `--explain`) and `hfaid dedup` (pHash or
embedding groups)."""

from __future__ import annotations

import dataclasses
import time
from typing import Annotated

import typer

from hfaid.app import app
from hfaid.jobs import finish_job
from hfaid.options import CatalogOpt, ConfigOpt, JsonOpt, open_for_writing, recorded_run
from hfaid.output import print_summary
from hfaid_core.config import RunnerConfig
from hfaid_core.errors import HfaidError
from hfaid_core.settings.ranges import cli_value
from hfaid_core.settings.stage1 import DedupConfig

WorkersOpt = Annotated[
    int | None, typer.Option(help="Decode processes [default: [runner] workers].")
]


ExplainOpt = Annotated[
    bool,
    typer.Option(
        "--explain",
        help="Also print, per cut, its measure's distribution, the cut and how many it fails.",
    ),
]


@app.command()
def clean(
    workers: WorkersOpt = None,
    explain: ExplainOpt = False,
    as_json: JsonOpt = False,
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Decode-check and measure ingested images once, then apply the [clean] cuts to all."""
    from curation.stage1.clean import clean as run_clean
    from curation.stage1.clean import measure_version, validate
    from db.outcomes import run_errors, write_outcomes

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
            if status == "reject":
                reasons[reason] = reasons.get(reason, 0) + 1
        errors = run_errors(cat, "clean", run.run_id)
        run.counts = {
            "measured": stats.items,
            "decided": outcomes.num_rows,
            "passed": statuses.count("pass"),
            "rejected": statuses.count("reject"),
            "errors": errors["errors"],
            "reasons": reasons,
            "top_error_reasons": errors["top_reasons"],
            "seconds": round(stats.seconds + time.perf_counter() - started, 2),
        }
    rows = {
        "measured now (decoded)": stats.items,
        "decided (all measured images)": outcomes.num_rows,
        "passed": statuses.count("pass"),
        "rejected": statuses.count("reject"),
    }
    rows.update({f"  {r}": n for r, n in sorted(reasons.items(), key=lambda kv: -kv[1])})
    rows["seconds"] = run.counts["seconds"]
    rows["images/s decoded"] = stats.items / stats.seconds if stats.seconds else 0.0
    cuts = None
    if explain:
        from curation.stage1.clean import explain as explain_cuts
        from curation.stage1.clean import stored_measurements

        cuts = explain_cuts(stored_measurements(cat, cfg.clean), cfg.clean)
    explained = [{k: _finite(v) for k, v in row.items()} for row in cuts or []]
    counts = {**run.counts, "explain": explained if explain else None}
    try:
        finish_job("clean", f"clean {cat.path}", rows, counts, errors, as_json)
    finally:
        if cuts is not None and not as_json:
            _print_explain(cuts)


def _print_explain(rows: list[dict]) -> None:
    """One line per cut: where the pool lies, where the cut is, and what it removes."""
    from rich.table import Table

    from hfaid.output import stdout

    decoded = max((r["measured"] for r in rows), default=0)
    table = Table(
        title=f"[clean] cuts over {decoded:,} decoded images (fails: images failing the cut; "
        "only: failing nothing else)",
        title_justify="left",
    )
    for name in ("check", "cut", "rule", "fails when", "min", "p1", "p5", "median", "p95",
                 "p99", "max", "fails", "only"):
        table.add_column(name, justify="left" if name in ("check", "cut", "rule") else "right")
    for r in rows:
        table.add_row(
            r["check"], r["cut"], r["rule"], f"{r['fails_when']} {_num(r['value'])}",
            *(_num(r[q]) for q in ("min", "p1", "p5", "median", "p95", "p99", "max")),
            f"{r['fails']:,}", f"{r['only']:,}",
        )
    stdout.print(table)


def _finite(value: object) -> object:
    """JSON has no NaN or infinity: a cut that is off reads "inf", an empty measure null."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return str(value)
    return value


def _num(value: float) -> str:
    return "-" if value != value else f"{value:.4g}"  # NaN: nothing measured


@app.command()
def dedup(
    max_distance: Annotated[
        int | None,
        typer.Option(
            "--max-distance",
            help="Hamming distance for pHash near-duplicates [default: [dedup] max_distance].",
        ),
    ] = None,
    method: Annotated[
        str | None,
        typer.Option("--method", help="phash | embedding [default: [dedup] method]."),
    ] = None,
    min_cosine: Annotated[
        float | None,
        typer.Option(
            "--min-cosine",
            help="Embedding cosine for near-duplicates [default: [dedup] min_cosine].",
        ),
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="Embedding model device [default: [dedup] device].")
    ] = None,
    workers: WorkersOpt = None,
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Group near-duplicates among clean-passed images (pHash, or image embeddings with
    --method embedding); keep one per group."""
    cat, cfg = open_for_writing(catalog, config)
    cli_value(DedupConfig, "max_distance", max_distance, "--max-distance")
    cli_value(DedupConfig, "min_cosine", min_cosine, "--min-cosine")
    cli_value(RunnerConfig, "workers", workers, "--workers")
    chosen = method or cfg.dedup.method
    if chosen == "phash":
        _dedup_phash(cat, cfg, cfg.dedup.max_distance if max_distance is None else max_distance)
    elif chosen == "embedding":
        cosine = cfg.dedup.min_cosine if min_cosine is None else min_cosine
        if not 0.0 < cosine <= 1.0:
            raise HfaidError(f"--min-cosine must be in (0, 1], got {cosine}")
        _dedup_embedding(cat, cfg, cosine, device or cfg.dedup.device, workers)
    else:
        raise HfaidError(f"--method must be phash or embedding, got {chosen!r}")


def _dedup_phash(cat, cfg, k: int) -> None:
    from curation.stage1.clean import PHASH_VERSION, measure_version
    from curation.stage1.dedup import plan_dedup
    from db.stage1 import clean_passed_without_hash, dedup_candidates, replace_dedup

    missing = clean_passed_without_hash(cat, PHASH_VERSION)
    if missing:
        raise HfaidError(f"{missing} clean-passed image(s) have no pHash; run `hfaid clean` first")
    settings = {
        "dedup": {**cfg.section("dedup"), "method": "phash", "max_distance": k},
        "phash_version": PHASH_VERSION,
    }
    with recorded_run(cat, "dedup", settings) as run:
        started = time.perf_counter()
        candidates = dedup_candidates(cat, measure_version(cfg.clean), PHASH_VERSION)
        groups, outcomes, counts = plan_dedup(candidates, k)
        replace_dedup(cat, groups, outcomes, run.run_id)
        counts["seconds"] = round(time.perf_counter() - started, 2)
        run.counts = counts
    _print_dedup(cat, f"pHash distance <= {k}", counts)


def _dedup_embedding(cat, cfg, min_cosine: float, device: str, workers: int | None) -> None:
    import functools

    from curation.stage1.clean import measure_version
    from curation.stage1.embed import EMBED_VERSION, EmbedWorker, model_folder, resolve_device
    from db.stage1 import embedding_candidates, images_to_embed, merge_embeddings, replace_dedup
    from hfaid_core.runner import ShardJob, run_job

    model = cfg.dedup.embedding_model
    folder = model_folder(model, cfg.weights.dir)
    device = resolve_device(device)
    settings = {
        "dedup": {**cfg.section("dedup"), "method": "embedding", "min_cosine": min_cosine,
                  "device": device},
        "embedding_version": EMBED_VERSION,
    }
    with recorded_run(cat, "dedup", settings) as run:
        job = ShardJob(
            name=f"embed-{model.replace('/', '_')}-{EMBED_VERSION}",
            work_dir=cat.work_dir,
            pending=lambda: images_to_embed(cat, model, EMBED_VERSION),
            worker_factory=functools.partial(
                EmbedWorker, str(folder), device, cfg.dedup.batch_size, cfg.decode.max_pixels
            ),
            merge=lambda files: merge_embeddings(cat, files, run.run_id, model, EMBED_VERSION),
            shard_size=cfg.runner.shard_size,
            # One model per process: in this process unless asked (a GPU holds one copy).
            workers=workers if workers is not None else 1,
            description="embed",
        )
        stats = run_job(job)
        started = time.perf_counter()
        candidates = embedding_candidates(cat, model, EMBED_VERSION, measure_version(cfg.clean))
        groups, outcomes, counts = _plan_embedded(candidates, min_cosine, device)
        replace_dedup(cat, groups, outcomes, run.run_id)
        counts["embedded_now"] = stats.items
        counts["seconds"] = round(stats.seconds + time.perf_counter() - started, 2)
        run.counts = counts
    _print_dedup(cat, f"embedding cosine >= {min_cosine:g}, {model}", counts)


def _plan_embedded(candidates, min_cosine: float, device: str):
    """Dedup plan over embedded images; an image that could not be embedded gets an error."""
    import numpy as np
    import pyarrow as pa

    from curation.stage1.dedup import plan_embedding_dedup

    has = np.array([v is not None for v in candidates.column("vector").to_pylist()], bool)
    embedded = candidates.filter(pa.array(has))
    vectors = (
        np.array(embedded.column("vector").to_pylist(), np.float32)
        if embedded.num_rows
        else np.zeros((0, 1), np.float32)
    )
    groups, outcomes, counts = plan_embedding_dedup(embedded, vectors, min_cosine, device)
    missing = candidates.filter(pa.array(~has)).column("image_id").to_pylist()
    if missing:
        outcomes = pa.concat_tables([outcomes, pa.table(
            {"image_id": missing, "status": ["error"] * len(missing),
             "reason": ["not_embedded"] * len(missing),
             "detail": ["the image could not be embedded; re-run to retry"] * len(missing)},
            schema=outcomes.schema)])
    counts["not_embedded"] = len(missing)
    return groups, outcomes, counts


def _print_dedup(cat, what: str, counts: dict) -> None:
    rows = {
        "clean-passed images": counts["images"] + counts.get("not_embedded", 0),
        "pairs within distance": counts["pairs_within_k"],
        "near-duplicate groups": counts["groups"],
        "kept": counts["kept"],
        "rejected as near-duplicates": counts["rejected"],
    }
    if "embedded_now" in counts:
        rows["embedded now"] = counts["embedded_now"]
        rows["could not be embedded (error)"] = counts["not_embedded"]
    rows["seconds"] = counts["seconds"]
    print_summary(f"dedup {cat.path} ({what})", rows)
