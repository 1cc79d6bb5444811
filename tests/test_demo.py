"""`hfaid demo` runs end to end on the bundled photos and shows a funnel."""

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
