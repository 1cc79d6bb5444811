"""Kill -9 of `hfaid ingest` at random moments, then a re-run: the catalog of a clean run."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from db.catalog import Catalog
from tests.conftest import write_photo_pool

IMAGE_COLUMNS = (
    "image_id, bytes, format, width, height, mode, exif_orientation, n_frames, header_error"
)
PATH_COLUMNS = "path, image_id, source, size, mtime, error, error_detail"


def _snapshot(path: Path) -> tuple[list, list]:
    with Catalog(path).connect(read_only=True) as con:
        images = con.execute(f"SELECT {IMAGE_COLUMNS} FROM images ORDER BY image_id").fetchall()
        paths = con.execute(f"SELECT {PATH_COLUMNS} FROM paths ORDER BY path").fetchall()
    return images, paths


def _ingest(pool: Path, catalog: Path, config: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hfaid.cli",
            "ingest",
            str(pool),
            "--catalog",
            str(catalog),
            "--config",
            str(config),
            "--workers",
            "2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_kill_minus_nine_then_rerun_equals_uninterrupted_run(tmp_path: Path):
    pool = tmp_path / "pool"
    write_photo_pool(pool, 1200, size=(160, 120))
    (pool / "dup.jpg").write_bytes((pool / "img_00000.jpg").read_bytes())
    config = tmp_path / "c.toml"
    config.write_text("[runner]\nshard_size = 8\n[catalog]\nlock_timeout_s = 30\n")

    clean = tmp_path / "clean.duckdb"
    assert _ingest(pool, clean, config).wait(timeout=300) == 0
    expected = _snapshot(clean)
    assert len(expected[0]) == 1200 and len(expected[1]) == 1201

    killed = tmp_path / "killed.duckdb"
    rng = random.Random(1234)
    kills = 0
    for _ in range(3):
        proc = _ingest(pool, killed, config)
        _wait_for_first_shard(proc, Path(f"{killed}.work"))
        time.sleep(rng.uniform(0.0, 0.3))  # then a random moment: mid-shard, mid-merge, ...
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
    assert kills >= 1, "the job finished before any kill; make the pool larger"
    final = _ingest(pool, killed, config)
    assert final.wait(timeout=300) == 0, final.stderr.read()
    assert _snapshot(killed) == expected


def _wait_for_first_shard(proc: subprocess.Popen, work_dir: Path, timeout_s: float = 120) -> None:
    """Return once a shard result (or its temp file) exists, or the process has ended: a fixed
    delay would be outrun by a fast machine and never reached by a slow one."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        if work_dir.exists() and any(p.suffix == ".parquet" for p in work_dir.rglob("*")):
            return
        time.sleep(0.01)
