"""`hfaid evaluate` end to end: test set, baselines, outputs, scoring job, tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from curation.evaluate.baselines import check_baselines, write_baseline
from curation.evaluate.job import eval_settings, run_evaluation
from curation.evaluate.methods import Method, scan_outputs
from curation.evaluate.metrics import metric_versions, parse_metrics
from curation.evaluate.table import EvalTable, build_table, write_outputs
from curation.evaluate.testset import (
    Protocol,
    Source,
    TestSet,
    export_sources,
    folder_sources,
    prepare_test_set,
)
from db.catalog import Catalog
from db.evaluation import (
    drop_method,
    per_image_scores,
    record_outputs,
    record_set,
    set_table_layout,
    table_layout,
    training_overlap,
)
from hfaid_core.errors import HfaidError
from hfaid_core.image_open import DEFAULT_MAX_PIXELS
from hfaid_core.runner import JobStats
from hfaid_core.settings.score import on_gpu


@dataclass
class EvalRequest:
    test_set: Path
    protocol: Protocol
    hr: str | None = None  # a folder, or "bundled"
    export: Path | None = None  # an `hfaid export --pairs` folder
    methods: list[Method] = field(default_factory=list)
    baselines: list[str] = field(default_factory=list)
    drop: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    shave: int = 4
    device: str = "cpu"
    weights_dir: str | None = None
    workers: int = 1
    decode_workers: int = -1
    max_pixels: int = DEFAULT_MAX_PIXELS  # [decode] max_pixels: larger sources are too_large
    batch_size: int = 0
    out: Path | None = None  # default: <test set>/results


@dataclass
class EvalResult:
    test_set: TestSet
    table: EvalTable | None
    paths: dict[str, Path]
    stats: JobStats | None
    notes: dict[str, str]
    warnings: list[str]
    counts: dict[str, Any]


def sources_for(req: EvalRequest) -> tuple[list[Source] | None, str]:
    if req.hr and req.export:
        raise HfaidError("give --hr or --export, not both")
    if req.export:
        return export_sources(req.export), f"export {Path(req.export).resolve()}"
    if req.hr:
        origin = req.hr if req.hr == "bundled" else str(Path(req.hr).resolve())
        return folder_sources(req.hr, req.protocol.hr_size), origin
    return None, ""


def run_evaluate(catalog: Catalog, req: EvalRequest, run_id: int | None) -> EvalResult:
    sources, origin = sources_for(req)
    metrics = parse_metrics(req.metrics) if req.metrics else []
    baselines = check_baselines(req.baselines)
    test_set = prepare_test_set(req.test_set, sources, req.protocol, origin, req.workers,
                                req.max_pixels)
    set_id, names = test_set.set_id, test_set.names
    record_set(catalog, set_id, str(test_set.folder.resolve()), test_set.protocol,
               _images_table(test_set), run_id)
    warnings = _leak_warnings(catalog, test_set)
    for name in req.drop:
        if not drop_method(catalog, set_id, name):
            raise HfaidError(f"--drop {name}: no such method in this test set")

    # Every method of the set is rescanned, so scores always follow the files' current bytes.
    chosen = [Method(b, write_baseline(test_set, b), "baseline") for b in baselines]
    chosen += req.methods
    known = {m["method"]: m for m in table_layout(catalog, set_id).get("methods", [])}
    given = {m.name for m in chosen}
    earlier = [Method(name, write_baseline(test_set, name) if m["kind"] == "baseline"
                      else Path(m["folder"]), m["kind"])
               for name, m in known.items() if name not in given]
    missing_outputs = 0
    for method in chosen + earlier:
        scan = scan_outputs(method.folder, names)
        missing_outputs += scan.missing
        if scan.missing == len(names):
            warnings.append(f"{method.name}: no file in {method.folder} is named like the LR "
                            f"images ({names[0]}.png, ...)")
        elif scan.missing:
            warnings.append(f"{method.name}: {scan.missing} of {len(names)} outputs missing")
        if scan.ambiguous:
            warnings.append(f"{method.name}: several files for {scan.ambiguous[0]} (and "
                            f"{len(scan.ambiguous) - 1} more); the first by name is used")
        record_outputs(catalog, set_id, method.name, str(method.folder), method.kind,
                       scan.table, run_id)

    all_methods = [m.name for m in chosen + earlier]
    if not metrics or not all_methods:
        return EvalResult(test_set, None, {}, None, {}, warnings,
                          {"images": len(names), "skipped sources": len(test_set.skipped),
                           "methods": len(all_methods)})
    wanted, notes = metric_versions(metrics, req.shave, req.device, req.weights_dir)
    set_table_layout(catalog, set_id, [m.name for m in metrics], notes, req.shave)
    stats = None
    if wanted:
        fullref = [m for m, (_, full) in wanted.items() if full]
        noref = [m for m, (_, full) in wanted.items() if not full]
        settings = eval_settings(fullref, noref, {m: v for m, (v, _) in wanted.items()},
                                 req.shave, req.device, req.weights_dir,
                                 eval_decode_workers(req.decode_workers, req.device),
                                 req.batch_size)
        stats = run_evaluation(catalog, set_id, all_methods, wanted, settings, run_id,
                               workers=req.workers)
    per_image = per_image_scores(catalog, set_id, wanted)
    table = build_table(per_image, table_layout(catalog, set_id))
    out = req.out or test_set.folder / "results"
    paths = write_outputs(table, per_image, out)
    errors = sum(1 for r in per_image.column("status").to_pylist() if r == "error")
    counts = {"images": len(names), "skipped sources": len(test_set.skipped),
              "methods": len(all_methods), "metrics": len(metrics),
              "scored pairs": stats.items if stats else 0, "errors": errors,
              "missing outputs": missing_outputs}
    return EvalResult(test_set, table, paths, stats, notes, warnings, counts)


def eval_decode_workers(requested: int, device: str) -> int:
    """Decode processes for the no-reference metrics: as configured, and for auto (-1) none
    on CPU. There the model uses the cores anyway (NIQE: 46 vs 50 img/s without and with 2
    workers, docs/BENCHMARKS.md), while each worker costs seconds of start-up (torch imports)
    that a test set of a few hundred 512 px images never earns back."""
    if requested >= 0 or on_gpu(device):
        return requested
    return 0


def _images_table(test_set: TestSet) -> pa.Table:
    return pa.Table.from_pylist([{
        "name": i["name"], "hr_id": i["hr_id"], "lr_id": i["lr_id"],
        "hr_path": str((test_set.folder / i["hr"]).resolve()),
        "source_path": i.get("source"), "source_id": i.get("source_id"),
    } for i in test_set.images])


def _leak_warnings(catalog: Catalog, test_set: TestSet) -> list[str]:
    """Test images whose source file is in the pool, and above all in a training export."""
    ids = [i["source_id"] for i in test_set.images if i.get("source_id")]
    overlap = training_overlap(catalog, ids) if ids else []
    exported = [o for o in overlap if o["exports"]]
    out = []
    if exported:
        runs = sorted({r for o in exported for r in o["exports"]})
        out.append(f"{len(exported)} of {len(ids)} test images were exported for training "
                   f"(export runs {', '.join(map(str, runs))}): they are not held out")
    elif overlap:
        out.append(f"{len(overlap)} of {len(ids)} test images are in the catalog's pool (not "
                   "exported yet): keep them out of training exports")
    return out
