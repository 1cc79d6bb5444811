"""Run an export end to end: plan, guard the output folder, write, datasheet, manifest, record."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import multiprocessing
import os
import shutil
import tarfile
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa

from curation.export.datasheet import render_datasheet
from curation.export.plan import Item, Plan, build_plan
from curation.export.samples import (
    Sample,
    SampleOptions,
    build_sample,
    check_resize,
    stored_extension,
)
from curation.export.writers import (
    TMP_SUFFIX,
    finished_shards,
    write_file,
    write_imagefolder,
    write_shards,
)
from db.catalog import Catalog
from db.exports import record_export, score_means
from db.outcomes import funnel
from hfaid_core.errors import HfaidError
from hfaid_core.image_open import DEFAULT_MAX_PIXELS
from hfaid_core.processes import die_with_parent
from hfaid_core.settings.degrade import DegradationConfig
from hfaid_core.settings.export import ExportConfig

MARKER = ".hfaid-export.json"  # present while an export is unfinished; names its export id
FORMATS = ("webdataset", "imagefolder")
READ_THREADS = 4  # plain copies: file reads + content-hash checks beside the tar writer


@dataclass
class ExportResult:
    export_id: str
    out: Path
    manifest: dict[str, Any]
    resumed_shards: int


def check_options(cfg: ExportConfig) -> None:
    """Refuse bad option values with one clear line each."""
    if cfg.format not in FORMATS:
        raise HfaidError(f"--format {cfg.format!r} is not one of {', '.join(FORMATS)}")
    if cfg.captions not in ("required", "any"):
        raise HfaidError(f"--captions {cfg.captions!r} is not required or any")
    if cfg.image_format not in ("keep", "jpg", "png"):
        raise HfaidError(f"--image-format {cfg.image_format!r} is not keep, jpg or png")
    check_resize(cfg.resize)
    if cfg.maxcount < 1 or cfg.maxsize < 1:
        raise HfaidError("--maxcount and --maxsize must be positive")
    if cfg.scale < 1:
        raise HfaidError(f"--scale must be >= 1, got {cfg.scale}")
    if not 1 <= cfg.jpeg_quality <= 100:
        raise HfaidError(f"[export] jpeg_quality must be in 1..100, got {cfg.jpeg_quality}")


def options_dict(cfg: ExportConfig, degradation: DegradationConfig) -> dict[str, Any]:
    opts = asdict(cfg)
    if cfg.pairs:
        opts["degradation"] = asdict(degradation)
    return opts


def run_export(catalog: Catalog, cfg: ExportConfig, degradation: DegradationConfig, out: Path,
               overwrite: bool, workers: int, run_id: int, progress=None,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> ExportResult:
    """Write the export into `out` (resuming an interrupted one with the same id) and record it;
    images decoded for re-encoding must fit [decode] `max_pixels` (else `too_large`)."""
    check_options(cfg)
    out = Path(os.path.abspath(out))  # normalises "..", without following symlinks
    plan = build_plan(catalog, cfg)
    _refuse_source_overlap(catalog, out, plan.folders)
    options = options_dict(cfg, degradation)
    heavy = cfg.pairs or cfg.resize != "none" or cfg.image_format != "keep"
    if heavy:  # which images decode within the budget is part of what the export holds
        options["max_pixels"] = max_pixels
    export_id = plan.fingerprint(options)
    resuming = _prepare_folder(out, export_id, overwrite)
    (out / MARKER).write_text(json.dumps({"export_id": export_id}) + "\n")

    finished = finished_shards(out) if resuming and cfg.format == "webdataset" else []
    done = {k for rec in finished for k in rec.keys}
    todo = [i for i in plan.items if i.key not in done]
    opts = SampleOptions(cfg.resize, cfg.image_format, cfg.jpeg_quality, cfg.pairs, cfg.scale,
                         cfg.seed, degradation, max_pixels)
    skipped = {reason: list(ids) for reason, ids in plan.skipped.items()}
    skip_detail: dict[str, str] = {}

    def seen(sample: Sample) -> None:
        if sample.skip_reason:
            skipped.setdefault(sample.skip_reason, []).append(sample.image_id)
            skip_detail[sample.image_id] = sample.skip_detail
        if progress is not None:
            progress(1)

    with _samples(todo, opts, workers, heavy) as samples:
        if cfg.format == "webdataset":
            shards = finished + list(write_shards(out, samples, cfg.maxcount, cfg.maxsize,
                                                  len(finished), seen))
            written = [k for rec in shards for k in rec.keys]
            layout: dict[str, Any] = {"shards": [asdict(r) for r in shards]}
            item_files = [(k, rec.name) for rec in shards for k in rec.keys]
        else:
            files, written = write_imagefolder(out, samples, seen)
            layout = {"files": files}
            by_key = {i.key: i for i in plan.items}
            item_files = [(k, f"{k}.{_ext(files, k)}") for k in written if k in by_key]

    written_set = set(written)
    exported = [i for i in plan.items if i.key in written_set]
    image_exts = Counter(stored_extension(i.format, cfg.resize, cfg.image_format)
                         for i in exported)
    counts = {"selected": plan.selected, "exported": len(written),
              "skipped": {r: len(ids) for r, ids in sorted(skipped.items())},
              "image_formats": dict(sorted(image_exts.items()))}
    manifest = {
        "export_id": export_id, "format": cfg.format, "hfaid_version": _version(),
        "options": options, "catalog_runs": plan.runs, "counts": counts, **layout,
    }
    readme = render_datasheet(manifest, funnel(catalog),
                              score_means(catalog, [i.image_id for i in exported]),
                              [i.meta["source"] for i in exported])
    manifest["files_extra"] = [{"name": "README.md",
                                "sha256": write_file(out / "README.md", readme.encode()),
                                "bytes": len(readme.encode())}]
    body = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    manifest_sha = write_file(out / "manifest.json", body)  # last: its presence means finished
    (out / MARKER).unlink(missing_ok=True)

    _record(catalog, run_id, export_id, out, cfg, options, counts, manifest_sha, item_files,
            plan, skipped, skip_detail)
    return ExportResult(export_id, out, manifest, len(finished))


def _ext(files: list[dict[str, Any]], key: str) -> str:
    for f in files:
        if f["name"].split(".", 1)[0] == key:
            return f["name"].split(".", 1)[1]
    return ""


def _version() -> str:
    try:
        return importlib.metadata.version("hfaid")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - source checkout
        return "unknown"


@contextmanager
def _samples(items: list[Item], opts: SampleOptions, workers: int, heavy: bool
             ) -> Iterator[Iterator[Sample]]:
    """Samples in plan order. Decoding work (pairs, resize) runs in spawn processes; plain
    copies in threads (reading and hashing release the GIL, overlapping with tar writing)."""
    build = partial(build_sample, opts=opts)
    workers = max(1, min(workers or os.cpu_count() or 1, len(items) or 1))
    if heavy and workers == 1:
        yield map(build, items)
        return
    executor = (ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                    initializer=die_with_parent, initargs=(os.getpid(),))
                if heavy else ThreadPoolExecutor(READ_THREADS))
    try:
        yield _ordered(executor, build, items, ahead=4 * (workers if heavy else READ_THREADS))
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _ordered(executor: Executor, fn, items: list[Item], ahead: int) -> Iterator[Sample]:
    """executor.map with a bounded window, so a slow disk never holds the whole set in memory."""
    window: deque[Future] = deque()
    for item in items:
        window.append(executor.submit(fn, item))
        if len(window) >= ahead:
            yield window.popleft().result()
    while window:
        yield window.popleft().result()


def _refuse_source_overlap(catalog: Catalog, out: Path, folders: list[str]) -> None:
    """An export never lands inside (or around) the images or the catalog it was made from."""
    cat = Path(os.path.abspath(catalog.path))
    if out == cat or out in cat.parents or out == Path(out.anchor):
        raise HfaidError(f"--out {out} contains the catalog {cat}; choose a separate folder")
    for folder in folders:
        f = Path(os.path.abspath(folder))
        if out == f or f in out.parents:
            raise HfaidError(f"--out {out} is inside the image folder {f}; exports must not mix "
                             "with source images (choose a folder outside it)")
        if out in f.parents:
            raise HfaidError(f"--out {out} contains the image folder {f}; choose a separate folder")


def _prepare_folder(out: Path, export_id: str, overwrite: bool) -> bool:
    """Create or clear `out`; True when it holds an unfinished run of this same export."""
    if out.exists() and not out.is_dir():
        raise HfaidError(f"--out {out} exists and is not a folder")
    entries = sorted(p.name for p in out.iterdir()) if out.exists() else []
    if not entries:
        out.mkdir(parents=True, exist_ok=True)
        return False
    marker = out / MARKER
    same = False
    if marker.exists() and not (out / "manifest.json").exists():
        try:
            same = json.loads(marker.read_text()).get("export_id") == export_id
        except (OSError, ValueError):
            same = False
    if same and not overwrite:
        for tmp in out.glob(f"*{TMP_SUFFIX}"):
            tmp.unlink()  # partial files of the killed run: rewritten, never listed
        return True
    if not overwrite:
        what = ("an unfinished export with other options or catalog state"
                if marker.exists() and not (out / "manifest.json").exists()
                else "a finished export" if (out / "manifest.json").exists()
                else f"{len(entries)} entries")
        raise HfaidError(f"--out {out} is not empty ({what}); choose an empty folder or pass "
                         "--overwrite to replace it")
    shutil.rmtree(out)
    out.mkdir(parents=True)
    return False


def _record(catalog: Catalog, run_id: int, export_id: str, out: Path, cfg: ExportConfig,
            options: dict[str, Any], counts: dict[str, Any], manifest_sha: str,
            item_files: list[tuple[str, str]], plan: Plan, skipped: dict[str, list[str]],
            skip_detail: dict[str, str]) -> None:
    by_key = {i.key: i for i in plan.items}
    items = pa.table({
        "image_id": pa.array([by_key[k].image_id for k, _ in item_files], pa.string()),
        "key": pa.array([k for k, _ in item_files], pa.string()),
        "shard": pa.array([s for _, s in item_files], pa.string()),
    })
    rows = [(by_key[k].image_id, "pass", None, f"{export_id} {s}") for k, s in item_files]
    rows += [(i, "reject", r, skip_detail.get(i, "")) for r, ids in skipped.items() for i in ids]
    outcomes = pa.table({
        "image_id": pa.array([r[0] for r in rows], pa.string()),
        "status": pa.array([r[1] for r in rows], pa.string()),
        "reason": pa.array([r[2] for r in rows], pa.string()),
        "detail": pa.array([r[3] for r in rows], pa.string()),
    })
    record_export(catalog, run_id, export_id, str(out), cfg.format, options, counts,
                  manifest_sha, items, outcomes)


def verify_export(out: Path) -> list[str]:
    """Problems found checking a finished export against its manifest (empty = valid)."""
    manifest_path = out / "manifest.json"
    if not manifest_path.exists():
        return [f"{out} has no manifest.json (unfinished or not an export)"]
    manifest = json.loads(manifest_path.read_text())
    problems: list[str] = []
    listed = [*manifest.get("shards", []), *manifest.get("files", []),
              *manifest.get("files_extra", [])]
    for rec in listed:
        path = out / rec["name"]
        if not path.exists():
            problems.append(f"{rec['name']}: missing")
            continue
        if _sha256(path) != rec["sha256"]:
            problems.append(f"{rec['name']}: sha256 mismatch")
    for rec in manifest.get("shards", []):
        path = out / rec["name"]
        if path.exists():
            with tarfile.open(path) as tar:
                keys = list(dict.fromkeys(m.name.split(".", 1)[0] for m in tar.getmembers()))
            if keys != rec["keys"]:
                problems.append(f"{rec['name']}: keys differ from the manifest")
    names = {r["name"] for r in manifest.get("shards", [])}
    extra = [p.name for p in out.glob("shard-*") if p.name not in names]
    problems += [f"{name}: not listed in the manifest" for name in extra]
    exported = manifest["counts"]["exported"]
    in_layout = (sum(len(r["keys"]) for r in manifest.get("shards", []))
                 if manifest["format"] == "webdataset" else exported)
    if in_layout != exported:
        problems.append(f"manifest counts {exported} samples but its shards hold {in_layout}")
    return problems


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
