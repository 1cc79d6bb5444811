"""kill -9 of `hfaid run` at random moments, 10 times, then a re-run: the catalog of a clean run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import write_photo_pool
from tests.run_helpers import CONFIG, QUALITY, SELECTIONS, snapshot


def _start(folder: Path, catalog: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "hfaid.cli", "run", "--recipe", str(folder / "recipe.toml"),
         "--catalog", str(folder / catalog), "--config", str(folder / "hfaid.toml")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


@pytest.mark.slow
def test_kill_minus_nine_ten_times_then_rerun_equals_one_clean_run(tmp_path: Path):
    write_photo_pool(tmp_path / "pool", 8, size=(160, 120))
    (tmp_path / "hfaid.toml").write_text(CONFIG)
    (tmp_path / "recipe.toml").write_text(QUALITY + SELECTIONS)

    started = time.monotonic()
    clean = _start(tmp_path, "clean.duckdb")
    assert clean.wait(timeout=300) == 0, clean.stderr.read()
    duration = time.monotonic() - started
    expected = snapshot(tmp_path / "clean.duckdb")
    assert {o[1] for o in expected["outcomes"]} == {"clean", "dedup", "score", "quality",
                                                    "aesthetic", "review_queue"}

    rng = random.Random(22)
    kills, attempts, horizon = 0, 0, duration
    while kills < 10 and attempts < 30:
        attempts += 1
        proc, started = _start(tmp_path, "killed.duckdb"), time.monotonic()
        # Anywhere in a run's time: start-up, a step's command, a merge, between steps. A run
        # that finished first (the catalog is nearly done) narrows where the next kill falls.
        try:
            proc.wait(timeout=rng.uniform(0.2, horizon))
            horizon = max(0.5, time.monotonic() - started)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
    assert kills == 10
    final = _start(tmp_path, "killed.duckdb")
    assert final.wait(timeout=300) == 0, final.stderr.read()
    assert snapshot(tmp_path / "killed.duckdb") == expected
