"""`hfaid demo` runs the demo recipe through `hfaid run` on the bundled photos, stops where
reviewers take over, shows a funnel, and prints no dependency warning."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_runs_every_stage_and_prints_the_funnel(tmp_path: Path):
    demo_dir = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "hfaid.cli", "demo", "--dir", str(demo_dir), "--no-serve"],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "funnel" in result.stdout
    assert "step 1/16: ingest" in result.stdout and "step 14/16: reviews" in result.stdout
    # the evaluation step's table: bicubic and Lanczos columns, NIQE filled without weights
    table = (demo_dir / "eval" / "results" / "table.md").read_text()
    assert "bicubic" in table and "lanczos" in table and "NIQE" in table
    assert "waiting for reviews: " in result.stdout
    output = result.stdout + result.stderr
    for noise in ("Warning", "warnings.warn", "kernels-community", "Traceback"):
        assert noise not in output, noise
    funnel = subprocess.run(
        [
            sys.executable,
            "-m",
            "hfaid.cli",
            "funnel",
            "--json",
            "--catalog",
            str(demo_dir / "hfaid.duckdb"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(funnel.stdout)
    assert data["images"] > 250
    assert data["stages"][0]["stage"] == "ingest"
    aesthetic = next(s for s in data["stages"] if s["stage"] == "aesthetic")
    assert aesthetic["not_run"] == "no scores for qalign_aesthetic"  # Q-Align is not bundled
    runs = subprocess.run(
        [sys.executable, "-m", "hfaid.cli", "sql", "SELECT status FROM runs WHERE command = 'run'",
         "--json", "--catalog", str(demo_dir / "hfaid.duckdb")],
        capture_output=True, text=True, check=True,
    )
    assert json.loads(runs.stdout) == {"status": "waiting"}
