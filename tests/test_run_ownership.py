"""Concurrent and killed runs: per-run work folders with owners, workers that die with their
parent, runs shown `interrupted` once their process is gone (issue 26, items 3, 6, 7)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pyarrow as pa

from db.catalog import Catalog
from hfaid_core.processes import ProcessId, this_process
from hfaid_core.runner import OWNER_FILE, ShardJob, run_job, write_result
from tests.conftest import write_photo_pool

REPO = Path(__file__).resolve().parents[1]


def _rows(catalog: Path, sql: str) -> list[tuple]:
    with Catalog(catalog).connect(read_only=True) as con:
        return con.execute(sql).fetchall()


def _hfaid(*argv: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hfaid.cli", *map(str, argv)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_two_ingests_of_different_folders_at_once_both_finish_whole(tmp_path):
    """The issue's case: two ingests at once shared `<catalog>.work/ingest` and took each
    other's unfinished result files for crash leftovers ("No files found", exit 1, paths
    missing until a re-run). Each run now works in its own folder."""
    config = tmp_path / "c.toml"
    config.write_text("[runner]\nshard_size = 2\n[catalog]\nlock_timeout_s = 60\n")
    catalog = tmp_path / "c.duckdb"
    pools = [tmp_path / "a", tmp_path / "b"]
    for k, pool in enumerate(pools):
        write_photo_pool(pool, 120, size=(48 + 8 * k, 40))
    assert _hfaid("init", "--catalog", catalog).wait(timeout=120) == 0
    procs = [_hfaid("ingest", pool, "--catalog", catalog, "--config", config, "--workers", 2)
             for pool in pools]
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.stderr.read()[-2000:]
    assert _rows(catalog, "SELECT source, count(*) FROM paths GROUP BY 1 ORDER BY 1") == [
        (str(pools[0]), 120), (str(pools[1]), 120)]
    assert _rows(catalog, "SELECT count(*) FROM paths WHERE image_id IS NULL") == [(0,)]
    assert list(Path(f"{catalog}.work").rglob("*.parquet")) == []  # all merged, folders gone


def _job(work: Path, merged: list[str]) -> ShardJob:
    return ShardJob(name="test", work_dir=work, pending=lambda: pa.table({"x": [1]}),
                    worker_factory=_Echo, merge=lambda files: merged.extend(
                        f.name for f in files) or len(files), workers=1, run_id=7)


class _Echo:
    def process(self, items: pa.Table) -> pa.Table:
        return items


def _run_folder(work: Path, name: str, owner: ProcessId | None) -> Path:
    folder = work / "test" / name
    folder.mkdir(parents=True)
    if owner is not None:
        (folder / OWNER_FILE).write_text(json.dumps(owner.as_dict()))
    write_result(pa.table({"x": [2]}), folder / f"{name}-000000.parquet")
    (folder / ".tmp-half.parquet").write_bytes(b"half-written")
    return folder


def test_a_live_runs_files_are_never_taken_and_a_dead_runs_are(tmp_path):
    """Leftovers are adopted only once their process is gone: a pid that lives but started at
    another time (reused) counts as gone, and so does a folder without an owner (written
    before per-run folders); a live run's result and temp files are left alone."""
    me = this_process()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    gone = ProcessId(int(dead.stdout), time.time() - 5, me.host)
    live = _run_folder(tmp_path, "live", me)
    _run_folder(tmp_path, "dead", gone)
    _run_folder(tmp_path, "reused", ProcessId(me.pid, me.started - 100, me.host))
    _run_folder(tmp_path, "ownerless", None)
    merged: list[str] = []
    stats = run_job(_job(tmp_path, merged))
    assert stats.recovered_files == 3
    assert sorted(merged[:3]) == ["dead-000000.parquet", "ownerless-000000.parquet",
                                  "reused-000000.parquet"]  # merged first, before any work
    assert len(merged) == 4  # and this run's own shard
    assert sorted(p.name for p in (tmp_path / "test").iterdir()) == ["live"]
    assert sorted(p.name for p in live.iterdir()) == [".tmp-half.parquet", "live-000000.parquet",
                                                      OWNER_FILE]


def _wait_for_workers(proc: subprocess.Popen, count: int, timeout_s: float = 120) -> list[int]:
    """The pids of the command's worker processes, once `count` of them run."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        workers = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)
                   if "resource_tracker" not in " ".join(c.cmdline())]
        if len(workers) >= count:
            return workers
        time.sleep(0.05)
    raise AssertionError("the command ended before its workers were seen; use a larger pool")


def _alive(pids: list[int]) -> list[int]:
    return [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]


def test_kill_minus_nine_of_clean_or_export_leaves_no_worker_and_shows_interrupted(tmp_path):
    """The issue's cases: 3 workers (~265 MB each) outlived each kill -9 of clean or export,
    and killed runs stayed "running" forever. Workers now die with their parent; `hfaid runs`
    shows the run interrupted, and the next run of the command says it resumes it."""
    pool, catalog = tmp_path / "pool", tmp_path / "c.duckdb"
    write_photo_pool(pool, 400, size=(640, 480))
    config = tmp_path / "c.toml"
    config.write_text("[runner]\nshard_size = 2\n[catalog]\nlock_timeout_s = 60\n")
    assert _hfaid("ingest", pool, "--catalog", catalog, "--workers", 1).wait(timeout=300) == 0
    commands = {
        "clean": ["clean", "--workers", 2],
        "export": ["export", "--out", tmp_path / "out", "--status", "all", "--captions", "any",
                   "--resize", "max:64", "--workers", 2],
    }
    for name, argv in commands.items():
        proc = _hfaid(*argv, "--catalog", catalog, "--config", config)
        workers = _wait_for_workers(proc, 2)
        time.sleep(0.5)  # mid-work
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        deadline = time.monotonic() + 15
        while _alive(workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _alive(workers) == [], f"{name}: workers outlived their parent"

        listed = subprocess.run([sys.executable, "-m", "hfaid.cli", "runs", "--catalog",
                                 str(catalog)], cwd=REPO, capture_output=True, text=True,
                                env={**os.environ, "COLUMNS": "200"})
        row = next(line for line in listed.stdout.splitlines() if f" {name} " in line)
        assert "interrupted" in row and "running" not in row, listed.stdout
        (run_id,) = _rows(catalog, f"SELECT max(run_id) FROM runs WHERE command = '{name}'")[0]

        rerun = _hfaid(*argv, "--catalog", catalog, "--config", config)
        assert rerun.wait(timeout=600) == 0, rerun.stderr.read()[-2000:]
        assert f"resuming {name} run {run_id} " in rerun.stderr.read()
        assert _rows(catalog, f"SELECT status FROM runs WHERE run_id = {run_id}") == [
            ("interrupted",)]
    assert _rows(catalog, "SELECT count(*) FROM stage_outcomes WHERE stage = 'clean'") == [(400,)]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["counts"]["exported"] == 400
