"""The read and select side at 10k and 1M images, side by side: every 1M/10k ratio <= 2.5, and
`hfaid scores` under 1 GB of memory at 1M.

Usage: flock -x /tmp/hfaid-bench.lock .venv/bin/python benchmarks/bench_catalog_scale.py
       [--sizes 10000,1000000] [--repeats 2] [--repo DIR]

Both catalogs are synthetic and built in SQL with the real schema (every migration applied)
and the proportions of a real 1M pool: per image a path, 9 clean measurements, clean and dedup
outcomes; score outcomes and 3 stage-2 metrics for the 72% that pass dedup, Q-Align aesthetic
for the best quarter of those, and 3,000 reviewer verdicts (1M: 1M images, 2.5M outcomes,
12.3M score rows). Each step is the CLI in a fresh process (start-up included, as a user runs
it), timed from outside, with the process's peak RSS from GNU time; "review next" is
db.review.claim_next over a materialised queue of every image (the review app's click), and
"write scores" is db.scores.write_scores of 3 metrics for 1,024 scored images (a scoring
job's merge, at a new version), both timed in-process.
Steps alternate between the two sizes and the best of --repeats counts. --repo runs
everything with the code of another checkout (an older commit's worktree: before/after).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]  # --repo replaces it before any step runs
HFAID = [sys.executable, "-m", "hfaid.cli"]
N01 = "(sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()))"  # seeded standard normal
CLEAN_METRICS = ("laplacian_var", "brightness", "entropy", "gray_delta", "short_side",
                 "aspect_ratio", "gray_mode", "transparent_fraction", "n_frames")
STAGE2 = {
    "maniqa": "least(0.95, greatest(0.05, 0.45 + 0.12 * (0.8 * q + 0.6 * {e})))",
    "clipiqa": "least(0.98, greatest(0.05, 0.55 + 0.15 * (0.7 * q + 0.71 * {e})))",
    "niqe": "greatest(1.2, 4.5 - 1.2 * (0.7 * q + 0.71 * {e}))",
}
# The queue is materialised when `hfaid review` starts (not timed here); a click then leases
# the reviewer's next image from it.
NEXT_ITEM = """
import sys, time
from db.catalog import Catalog
from db.review import claim_next, sync_queue
catalog = Catalog(__import__("pathlib").Path(sys.argv[1]))
sync_queue(catalog, None)
start = time.perf_counter()
claim_next(catalog, "bench", None, 300.0)
print(time.perf_counter() - start)
"""
WRITE_SCORES = """
import sys, time, pyarrow as pa
from db.catalog import Catalog
from db.scores import write_scores
catalog = Catalog(__import__("pathlib").Path(sys.argv[1]))
with catalog.connect(read_only=True) as con:
    ids = [r[0] for r in con.execute("SELECT DISTINCT image_id FROM scores "
                                     "WHERE metric = 'niqe' ORDER BY 1 LIMIT 1024").fetchall()]
n = 3 * len(ids)
rows = pa.table({"image_id": ids * 3, "value": [0.5] * n, "version": [f"v{time.time_ns()}"] * n,
                 "metric": [m for m in ("maniqa", "clipiqa", "niqe") for _ in ids]})
start = time.perf_counter()
assert write_scores(catalog, rows, 0) == rows.num_rows
print(time.perf_counter() - start)
"""


def build_catalog(path: Path, n: int) -> None:
    """The synthetic catalog described in the module docstring."""
    from db.accounts import add_reviewer
    from db.catalog import Catalog
    subprocess.run([*HFAID, "init", "--catalog", str(path)], check=True, cwd=REPO,
                   capture_output=True)
    con = duckdb.connect(str(path))
    con.execute("SELECT setseed(0.26)")
    con.execute(f"CREATE TEMP TABLE lat AS SELECT i, printf('%064x', hash(i)) AS image_id, "
                f"{N01} AS q, random() AS u FROM range({n}) t(i)")
    con.execute("INSERT INTO images (image_id, bytes, format, width, height, mode) "
                "SELECT image_id, 2000000 + (u * 3e6)::BIGINT, 'JPEG', 2048, 1536, 'RGB' FROM lat")
    con.execute("INSERT INTO paths (path, image_id, source, size, mtime) "
                "SELECT printf('/pool/%08d.jpg', i), image_id, 'pool', 2000000, 0 FROM lat")
    for k, metric in enumerate(CLEAN_METRICS):
        con.execute(f"INSERT INTO scores (image_id, metric, value, version) SELECT image_id, "
                    f"'{metric}', exp(5 + q) + {k}, 'clean-1-x4' FROM lat")
    outcomes = (("clean", "u < 0.8", "blurry", "TRUE"), ("dedup", "u < 0.72", "near_duplicate",
                "u < 0.8"), ("score", "TRUE", "score_failed", "u < 0.72"))
    for stage, passes, reason, seen in outcomes:
        con.execute(f"INSERT INTO stage_outcomes (image_id, stage, status, reason) "
                    f"SELECT image_id, '{stage}', CASE WHEN {passes} THEN 'pass' ELSE 'reject' "
                    f"END, CASE WHEN {passes} THEN NULL ELSE '{reason}' END FROM lat "
                    f"WHERE {seen}")
    for metric, expr in STAGE2.items():
        con.execute(f"INSERT INTO scores (image_id, metric, value, version) SELECT image_id, "
                    f"'{metric}', {expr.format(e=N01)}, 'synthetic-1' FROM lat WHERE u < 0.72")
    con.execute("INSERT INTO scores (image_id, metric, value, version) SELECT image_id, "
                "'qalign_aesthetic', 3 + 0.8 * q, 'synthetic-1' FROM lat "
                "WHERE u < 0.72 AND q > 0.67")
    con.execute("INSERT INTO stage_outcomes (image_id, stage, status, reason) "
                "SELECT image_id, 'review', CASE WHEN q + 0.5 * random() > 1.2 THEN 'pass' "
                "ELSE 'reject' END, NULL FROM lat WHERE u < 0.72 AND q > 0.67 LIMIT 3000")
    try:  # the scores were written in SQL: fill the wide table their writes would have kept
        from db.scores import rebuild_latest_scores
    except ImportError:  # --repo: code from before the wide table
        pass
    else:
        rebuild_latest_scores(con)
    con.close()
    add_reviewer(Catalog(path), "bench", "reviewer", "a long enough bench password")


def run_cli(argv: list[str]) -> tuple[float, int]:
    """(wall s, peak RSS bytes) of `hfaid ARGV` in a fresh process. The peak comes from GNU
    time, a small parent: a child's ru_maxrss starts from its parent's RSS at fork, and this
    process holds a DuckDB catalog's worth."""
    start = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-f", "peak-kb %M", *HFAID, *argv], cwd=REPO,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"hfaid {' '.join(argv)} failed: {done.stderr[-300:]}")
    peak = next(line for line in done.stderr.splitlines() if line.startswith("peak-kb "))
    return wall, int(peak.split()[1]) * 1024


def in_process(snippet: str, catalog: Path) -> tuple[float, int]:
    """The seconds a snippet prints (it times its own call, start-up excluded)."""
    out = subprocess.run([sys.executable, "-c", snippet, str(catalog)], cwd=REPO, check=True,
                         capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1]), 0


def steps(catalog: Path, tmp: Path) -> dict:
    c = ["--catalog", str(catalog)]
    return {
        "funnel": lambda: run_cli(["funnel", "--json", *c]),
        "select --stage quality --dry-run": lambda: run_cli(
            ["select", "--stage", "quality", "--dry-run", *c]),
        "select --stage quality": lambda: run_cli(["select", "--stage", "quality", *c]),
        "select --suggest": lambda: run_cli(["select", "--suggest", *c]),
        "scores --format parquet": lambda: run_cli(
            ["scores", "--format", "parquet", "--out", str(tmp / f"{catalog.stem}.parquet"), *c]),
        "report": lambda: run_cli(["report", "--out", str(tmp / f"report-{catalog.stem}"), *c]),
        "review queue: next item (claim_next)": lambda: in_process(NEXT_ITEM, catalog),
        "write scores: 1,024 images x 3 metrics": lambda: in_process(WRITE_SCORES, catalog),
    }


def main() -> None:
    global REPO
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout whose code runs")
    args = parser.parse_args()
    REPO = args.repo.resolve()
    sys.path.insert(0, str(REPO))
    small, large = (int(s) for s in args.sizes.split(","))
    with tempfile.TemporaryDirectory(dir=REPO.parent if os.access(REPO.parent, os.W_OK)
                                     else None) as folder:
        tmp = Path(folder)
        cats = {}
        for n in (small, large):
            cats[n] = tmp / f"cat{n}.duckdb"
            start = time.perf_counter()
            build_catalog(cats[n], n)
            print(f"built {n:,} images in {time.perf_counter() - start:.0f} s", flush=True)
        plans = {n: steps(cats[n], tmp) for n in cats}
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(f"| step | {small:,} s | {large:,} s | ratio (goal <= 2.5) | peak RSS at {large:,} |")
        print("|---|---:|---:|---:|---:|")
        for name in plans[small]:
            best: dict[int, tuple[float, int]] = {}
            for _ in range(args.repeats):
                for n in (small, large):
                    wall, rss = plans[n][name]()
                    if n not in best or wall < best[n][0]:
                        best[n] = (wall, max(rss, best.get(n, (0, 0))[1]))
            ratio = best[large][0] / best[small][0]
            rss = f"{best[large][1] / 2**20:,.0f} MB" if best[large][1] else "-"
            verdict = ("" if name.startswith("write") or ratio <= 2.5  # writes: no goal
                       else " (not met)")
            print(f"| {name} | {best[small][0]:.2f} | {best[large][0]:.2f} | {ratio:.2f}x"
                  f"{verdict} | {rss} |", flush=True)


if __name__ == "__main__":
    main()
