"""Time `select --dry-run`, `select` and `report` on a synthetic 1M-image catalog."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]
HFAID = [sys.executable, "-m", "hfaid.cli"]
sys.path.insert(0, str(REPO))
from db.scores import rebuild_latest_scores  # noqa: E402

# Box-Muller standard normal from DuckDB's seeded random().
N01 = "(sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()))"


def build_catalog(path: Path, n: int) -> None:
    """images, paths, clean/dedup outcomes and correlated metric scores, all in SQL."""
    subprocess.run([*HFAID, "init", "--catalog", str(path)], check=True, cwd=REPO,
                   capture_output=True)  # the real schema, every migration applied
    con = duckdb.connect(str(path))
    con.execute("SELECT setseed(0.42)")
    con.execute(f"""
        CREATE TEMP TABLE lat AS
        SELECT i, printf('%064x', i) AS image_id, {N01} AS q, random() AS u
        FROM range({n}) t(i)
    """)
    con.execute("""
        INSERT INTO images (image_id, bytes, format, width, height, mode)
        SELECT image_id, 2000000 + (u * 3e6)::BIGINT, 'JPEG', 2048 + (u * 1000)::INT, 1536, 'RGB'
        FROM lat
    """)
    con.execute("""
        INSERT INTO paths (path, image_id, source, size, mtime)
        SELECT printf('/pool/%s/%08d.jpg', src, i), image_id, src, 2000000, 0
        FROM (SELECT *, ['flickr', 'div2k', 'web'][1 + (i % 3)] AS src FROM lat)
    """)
    # Stage 1 keeps ~80%, dedup keeps ~90% of that: ~720k reach scoring at 1M.
    con.execute("""
        INSERT INTO stage_outcomes (image_id, stage, status, reason)
        SELECT image_id, 'clean', CASE WHEN u < 0.8 THEN 'pass' ELSE 'reject' END,
               CASE WHEN u < 0.8 THEN NULL ELSE 'blurry' END FROM lat
    """)
    con.execute("""
        INSERT INTO stage_outcomes (image_id, stage, status, reason)
        SELECT image_id, 'dedup', CASE WHEN u < 0.72 THEN 'pass' ELSE 'reject' END,
               CASE WHEN u < 0.72 THEN NULL ELSE 'near_duplicate' END FROM lat WHERE u < 0.8
    """)
    con.execute("""
        INSERT INTO scores (image_id, metric, value, version)
        SELECT image_id, 'laplacian_var', exp(6 + q), 'clean-1' FROM lat
    """)
    metrics = {
        "maniqa": "least(0.95, greatest(0.05, 0.45 + 0.12 * (0.8 * q + 0.6 * {e})))",
        "clipiqa": "least(0.98, greatest(0.05, 0.55 + 0.15 * (0.7 * q + 0.71 * {e})))",
        "niqe": "greatest(1.2, 4.5 - 1.2 * (0.7 * q + 0.71 * {e}))",
        "brisque": "least(100, greatest(0, 25 - 12 * (0.6 * q + 0.8 * {e})))",
        "musiq": "least(90, greatest(15, 60 + 10 * (0.7 * q + 0.71 * {e})))",
        "qalign_aesthetic": "least(5, greatest(1, 3 + 0.8 * (0.5 * q + 0.87 * {e})))",
    }
    for metric, expr in metrics.items():
        con.execute(
            f"INSERT INTO scores (image_id, metric, value, version) "
            f"SELECT image_id, '{metric}', {expr.format(e=N01)}, 'synthetic-1' FROM lat "
            f"WHERE u < 0.72"
        )
    rebuild_latest_scores(con)  # the scores were written in SQL: the table their writes keep
    con.close()


def timed_cli(argv: list[str]) -> tuple[float, float, str]:
    """Run `hfaid ARGV` in this process: (wall s, CPU s of all threads, last output line)."""
    import contextlib
    import io

    from hfaid.cli import main as hfaid_main

    out = io.StringIO()
    start, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = hfaid_main(argv)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    if code:
        raise SystemExit(f"hfaid {' '.join(argv)} failed: {lines[-1:]}")
    return wall, cpu, (lines[-1] if lines else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", action="store_true", help="100k images instead of 1M")
    parser.add_argument("--n", type=int, default=None)
    args = parser.parse_args()
    n = args.n or (100_000 if args.small else 1_000_000)
    os.environ["COLUMNS"] = "200"  # one-line summaries in the captured output
    with tempfile.TemporaryDirectory() as tmp:
        cat = Path(tmp) / "bench.duckdb"
        start = time.perf_counter()
        build_catalog(cat, n)
        print(f"built {n:,}-image catalog in {time.perf_counter() - start:.1f} s; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        c = ["--catalog", str(cat)]
        steps = [
            ("select --stage quality --dry-run", ["select", "--stage", "quality", "--dry-run", *c]),
            ("select --stage quality", ["select", "--stage", "quality", *c]),
            ("select --stage quality (re-run)", ["select", "--stage", "quality", *c]),
            ("select --stage aesthetic", ["select", "--stage", "aesthetic", *c]),
            ("select --stage review --dry-run", ["select", "--stage", "review", "--dry-run", *c]),
            ("select --stage review", ["select", "--stage", "review", *c]),
            ("report", ["report", "--out", str(Path(tmp) / "report"), *c]),
        ]
        # Interpreter start-up + imports of every command module: paid once per CLI call.
        begin = time.perf_counter()
        subprocess.run([*HFAID, "--help"], cwd=REPO, capture_output=True, check=True)
        startup = time.perf_counter() - begin
        print(f"{'hfaid --help (process start-up only)':40s} wall {startup:6.2f} s")
        for name, argv in steps:
            wall, cpu, last = timed_cli(argv)
            print(f"{name:40s} wall {wall:6.2f} s  cpu {cpu:6.2f} s  "
                  f"load {os.getloadavg()[0]:4.1f}  | {last[:80]}")


if __name__ == "__main__":
    main()
