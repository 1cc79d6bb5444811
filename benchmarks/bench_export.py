"""Export throughput vs raw `tar` of the same files, side by side in one run (goal >= 0.8x).

    .venv/bin/python benchmarks/bench_export.py [--small]

Builds a pool of 2-4 MP real-photo JPEGs, ingests it, marks every image accepted with a caption
(through db/, as review and captioning would), then alternates, per round: `tar -cf` of the pool
folder + sync; the export's data path alone on the same plan (read, content-hash check against
the image id, tar writing, shard sha256, fsync, rename); `hfaid export` end to end in-process
(interpreter start-up not counted; catalog reads, datasheet, manifest, catalog record counted);
and the same command selecting nothing (its fixed cost). Reports MB/s and ratios, a projection
to HFAID scale, plus `--pairs --resize crop:512` images/s.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.photo_pool import build_photo_pool  # noqa: E402
from curation.export.plan import build_plan  # noqa: E402
from curation.export.run import _samples  # noqa: E402
from curation.export.samples import SampleOptions  # noqa: E402
from curation.export.writers import write_shards  # noqa: E402
from db.captions import RESULT_SCHEMA, merge_caption_files  # noqa: E402
from db.catalog import Catalog  # noqa: E402
from db.images import images_passing  # noqa: E402
from db.outcomes import write_outcomes  # noqa: E402
from hfaid.cli import main as hfaid  # noqa: E402
from hfaid_core.settings.export import ExportConfig  # noqa: E402


def _prepare(root: Path, count: int, source: Path | None) -> tuple[Path, Path, int]:
    pool = root / "pool"
    if source is None:
        files = build_photo_pool(pool, count)
    else:  # copies of an existing pool (benchmarks/photo_pool.py output): no generation wait
        pool.mkdir(parents=True)
        files = [Path(shutil.copy(p, pool)) for p in sorted(source.glob("*.jpg"))[:count]]
    catalog = root / "catalog.duckdb"
    assert hfaid(["ingest", str(pool), "--catalog", str(catalog)]) == 0
    cat = Catalog(catalog)
    ids = images_passing(cat, None)["image_id"].to_pylist()
    n = len(ids)
    write_outcomes(
        cat,
        pa.table(
            {
                "image_id": ids,
                "stage": ["review"] * n,
                "status": ["pass"] * n,
                "reason": [None] * n,
                "detail": [""] * n,
            }
        ),
        run_id=1,
    )
    rows = [
        {
            "image_id": i,
            "model": "bench",
            "version": "bench@1",
            "caption": "a detailed caption of a photograph " * 4,
            "flags": [],
            "n_tokens": 32,
            "settings": "{}",
            "status": "pass",
            "reason": None,
            "detail": None,
        }
        for i in ids
    ]
    pq.write_table(pa.Table.from_pylist(rows, schema=RESULT_SCHEMA), root / "caps.parquet")
    merge_caption_files(cat, [root / "caps.parquet"], run_id=1)
    return pool, catalog, sum(f.stat().st_size for f in files)


def _time_tar(pool: Path, out: Path) -> float:
    t = time.perf_counter()
    subprocess.run(["tar", "-cf", str(out), "-C", str(pool), "."], check=True)
    subprocess.run(["sync", "-f", str(out)], check=False)  # both sides pay for reaching disk
    return time.perf_counter() - t


def _time_export(catalog: Path, out: Path, *extra: str, expect: int) -> float:
    t = time.perf_counter()
    code = hfaid(
        [
            "export",
            "--out",
            str(out),
            "--overwrite",
            "--maxsize",
            "200000000",
            *extra,
            "--catalog",
            str(catalog),
        ]
    )
    took = time.perf_counter() - t
    assert code == 0
    # a benchmark that silently skipped images would time nothing: check the count
    exported = json.loads((out / "manifest.json").read_text())["counts"]["exported"]
    assert exported == expect, f"exported {exported} of {expect}"
    return took


def _time_stream(plan, out: Path) -> float:
    """The data path of an export alone, on the same plan the command builds."""
    out.mkdir()
    t = time.perf_counter()
    with _samples(plan.items, SampleOptions(), workers=1, heavy=False) as samples:
        shards = list(write_shards(out, samples, 10_000, 200_000_000, 0))
    took = time.perf_counter() - t
    assert sum(len(s.keys) for s in shards) == len(plan.items)
    shutil.rmtree(out)
    return took


def _r(values: list[float]) -> list[float]:
    return [round(v, 2) for v in values]


def run(count: int, rounds: int, pairs: bool = True, source: Path | None = None) -> None:
    root = Path(tempfile.mkdtemp(prefix="hfaid-bench-export-"))
    try:
        pool, catalog, total = _prepare(root, count, source)
        _time_tar(pool, root / "warm.tar")  # warm the page cache for both contenders
        plan = build_plan(Catalog(catalog), ExportConfig())
        assert len(plan.items) == count
        tar_s, stream_s, exp_s, empty_s = [], [], [], []
        for r in range(rounds):
            tar_s.append(_time_tar(pool, root / "raw.tar"))
            stream_s.append(_time_stream(plan, root / f"stream{r}"))
            exp_s.append(_time_export(catalog, root / "export", expect=count))
            # the same command selecting nothing: its per-command fixed cost (catalog reads,
            # run record, datasheet, manifest), independent of the data size
            empty_s.append(_time_export(catalog, root / "empty", "--status", "rejected", expect=0))
        mb = total / 1e6
        t_tar, t_exp = statistics.median(tar_s), statistics.median(exp_s)
        t_fixed, t_stream = statistics.median(empty_s), statistics.median(stream_s)
        print(f"\nimages {count}, {mb:.0f} MB; median of {rounds} rounds")
        print(f"raw tar -cf + sync      : {t_tar:.2f} s  {mb / t_tar:7.1f} MB/s")
        print(
            f"export streaming (read, verify id, tar, sha256, fsync, rename): {t_stream:.2f} s"
            f"  {mb / t_stream:7.1f} MB/s"
        )
        print(f"hfaid export end to end : {t_exp:.2f} s  {mb / t_exp:7.1f} MB/s")
        print(f"hfaid export, 0 images  : {t_fixed:.2f} s (fixed per-command cost)")
        print(f"streaming ratio export/tar: {t_tar / t_stream:.2f}x (goal >= 0.8x)")
        print(f"end-to-end ratio at this size: {t_tar / t_exp:.2f}x")
        hfaid_bytes = 5000 * 3e6  # HFAID scale: 5,000 images of ~3 MB
        proj_tar = t_tar / total * hfaid_bytes
        proj_exp = t_fixed + t_stream / total * hfaid_bytes
        print(
            f"projected at 5,000 x 3 MB: tar {proj_tar:.0f} s, export {proj_exp:.0f} s, "
            f"ratio {proj_tar / proj_exp:.2f}x"
        )
        print(
            f"rounds: tar {_r(tar_s)} stream {_r(stream_s)} export {_r(exp_s)} empty {_r(empty_s)}"
        )

        if not pairs:
            return
        # pairs: degradation cost (2-4 MP originals; crop:512 as training uses)
        t_pairs = _time_export(
            catalog,
            root / "pairs",
            "--pairs",
            "--resize",
            "crop:512",
            "--workers",
            "2",
            expect=count,
        )
        print(
            f"--pairs --resize crop:512 ({count} images, 2 workers): "
            f"{t_pairs:.2f} s, {count / t_pairs:.1f} img/s"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", action="store_true", help="40 images, 3 rounds")
    parser.add_argument("--count", type=int, default=None, help="images (default 150)")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 5)")
    parser.add_argument("--no-pairs", action="store_true", help="skip the --pairs timing")
    parser.add_argument("--pool", type=Path, default=None, help="copy JPEGs from this folder")
    args = parser.parse_args()
    run(
        args.count or (40 if args.small else 150),
        args.rounds or (3 if args.small else 5),
        pairs=not args.no_pairs,
        source=args.pool,
    )
