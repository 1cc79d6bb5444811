"""`hfaid evaluate` vs pyiqa's per-image calls: PSNR + SSIM + NIQE on the same (SR, HR) pairs.

Usage: flock -x /tmp/hfaid-bench.lock .venv/bin/python benchmarks/bench_evaluate.py
       [--images 48] [--rounds 3] [--work DIR]

A test set of N HR 512x512 crops (Real-ESRGAN LR x4) is made once from real-photo JPEGs, and
its bicubic x4 baseline is the "SR output" both sides score, side by side in each round
(alternating which goes first), median of the rounds:
- pyiqa: `pyiqa.create_metric("psnr" | "ssim", test_y_channel=True, crop_border=4,
  color_space="ycbcr")` and `create_metric("niqe")`, each called on (SR path, HR path) one pair
  at a time, which is how pyiqa is used per image; metric build time excluded.
- `run_evaluate` (what `hfaid evaluate` does after start-up: scan and hash the outputs, the
  scoring job, the catalog merges, tables), on a fresh catalog each round.
- the `hfaid evaluate` command in a subprocess (interpreter start-up and imports included).
Scores of both sides are compared (max abs difference) so the comparison is of equal work.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.photo_pool import build_photo_pool  # noqa: E402
from curation.evaluate.baselines import write_baseline  # noqa: E402
from curation.evaluate.run import EvalRequest, run_evaluate  # noqa: E402
from curation.evaluate.testset import Protocol, folder_sources, prepare_test_set  # noqa: E402
from db.catalog import Catalog  # noqa: E402
from db.migrate import migrate  # noqa: E402

METRICS = ["psnr", "ssim", "niqe"]


def pyiqa_side(pairs: list[tuple[Path, Path]], work: Path
               ) -> tuple[float, dict[tuple[str, str], float]]:
    import pyiqa
    import torch

    from benchmarks.bench_scorers import pyiqa_metric  # NIQE on the same MATLAB parameters

    metrics = {
        "psnr": pyiqa.create_metric("psnr", test_y_channel=True, crop_border=4,
                                    color_space="ycbcr", device="cpu"),
        "ssim": pyiqa.create_metric("ssim", test_y_channel=True, crop_border=4,
                                    color_space="ycbcr", device="cpu"),
        "niqe": pyiqa_metric("niqe", work, {}, work),
    }
    scores = {}
    started = time.perf_counter()
    with torch.inference_mode():
        for sr, hr in pairs:
            for name, metric in metrics.items():
                value = metric(str(sr)) if name == "niqe" else metric(str(sr), str(hr))
                scores[(sr.stem, name)] = float(value)
    return time.perf_counter() - started, scores


def hfaid_side(set_dir: Path, work: Path, round_: int) -> tuple[float, dict]:
    catalog = Catalog(work / f"run-{round_}.duckdb")
    _fresh(catalog.path)
    migrate(catalog)
    request = EvalRequest(test_set=set_dir, protocol=Protocol(), baselines=["bicubic"],
                          metrics=METRICS, out=work / f"results-{round_}")
    started = time.perf_counter()
    result = run_evaluate(catalog, request, None)
    seconds = time.perf_counter() - started
    rows = pq.read_table(result.paths["parquet"]).to_pylist()
    assert result.counts["scored pairs"] == len(rows) // len(METRICS), result.counts
    return seconds, {(r["name"], r["metric"]): r["value"] for r in rows}


def command_side(set_dir: Path, work: Path, round_: int) -> float:
    _fresh(work / f"cmd-{round_}.duckdb")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    command = [sys.executable, "-m", "hfaid", "evaluate", "--test-set", str(set_dir),
               "--baseline", "bicubic", "--metrics", ",".join(METRICS),
               "--out", str(work / f"cmd-results-{round_}"),
               "--catalog", str(work / f"cmd-{round_}.duckdb")]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env)
    return time.perf_counter() - started


def _fresh(catalog: Path) -> None:
    """No scores to reuse: each round scores every pair."""
    import shutil

    catalog.unlink(missing_ok=True)
    shutil.rmtree(catalog.with_name(catalog.name + ".work"), ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="hfaid-bench-eval-"))
    build_photo_pool(work / "hr", args.images)
    started = time.perf_counter()
    test_set = prepare_test_set(work / "set", folder_sources(work / "hr"), Protocol(),
                                str(work / "hr"), workers=2)
    made_s = time.perf_counter() - started
    baseline = write_baseline(test_set, "bicubic")
    pairs = [(baseline / f"{n}.png", test_set.hr_path(n)) for n in test_set.names]
    n = len(pairs)

    times: dict[str, list[float]] = {"pyiqa": [], "hfaid": [], "command": []}
    for r in range(args.rounds):
        order = ["pyiqa", "hfaid", "command"] if r % 2 == 0 else ["command", "hfaid", "pyiqa"]
        for side in order:
            if side == "pyiqa":
                seconds, theirs = pyiqa_side(pairs, work)
            elif side == "hfaid":
                seconds, ours = hfaid_side(test_set.folder, work, r)
            else:
                seconds = command_side(test_set.folder, work, r)
            times[side].append(seconds)
    diffs = {m: max(abs(ours[(sr.stem, m)] - theirs[(sr.stem, m)]) for sr, _ in pairs)
             for m in METRICS}
    median = {k: statistics.median(v) for k, v in times.items()}
    report = {
        "pairs": n, "rounds": args.rounds, "test set made in s": round(made_s, 2),
        "seconds (median)": {k: round(v, 2) for k, v in median.items()},
        "pairs/s": {k: round(n / v, 2) for k, v in median.items()},
        "vs pyiqa": {k: round(median["pyiqa"] / v, 2) for k, v in median.items()},
        "max |hfaid - pyiqa|": {m: float(f"{d:.3g}") for m, d in diffs.items()},
        "all rounds": {k: [round(x, 2) for x in v] for k, v in times.items()},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
