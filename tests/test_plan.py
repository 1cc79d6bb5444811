"""`hfaid plan`: the default recipe's cost agrees with docs/BENCHMARKS.md, and a catalog's own
runs (and pass rates) replace the shipped table when it has them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pytest

from db.catalog import Catalog
from db.outcomes import write_outcomes
from db.runs import finish_run, start_run
from tests.conftest import write_photo_pool

ROOT = Path(__file__).resolve().parents[1]
H100 = "NVIDIA H100 80GB HBM3"


def benchmarks_scoring_hours() -> float:
    """The H100-hours of scoring a 1M pool, from the cost table of docs/BENCHMARKS.md."""
    page = (ROOT / "docs" / "BENCHMARKS.md").read_text()
    row = next(line for line in page.splitlines() if line.startswith("| **total, scoring**"))
    return float(re.search(r"\*\*([\d.]+)", row.split("|")[5])[1])


def _plan(cli, *args) -> dict:
    code, out, err = cli("plan", "--json", *args)
    assert code == 0, err
    return json.loads(out)


def _rows(plan: dict) -> dict[str, dict]:
    return {r["step"]: r for r in plan["steps"]}


def test_a_1m_pool_on_one_h100_costs_what_benchmarks_md_says(tmp_path, cli):
    plan = _plan(cli, "--pool", "1000000", "--gpus", "1", "--gpu", "h100",
                 "--catalog", tmp_path / "none.duckdb")
    expected = benchmarks_scoring_hours()
    assert abs(plan["totals"]["scoring_gpu_hours"] - expected) / expected < 0.10
    rows = _rows(plan)
    assert rows["score-quality"]["images_in"] == 720_000  # 1M -> 80% clean -> 90% unique
    assert rows["score-quality"]["rate_from"] == "h100"
    assert rows["select-review"]["images_out"] == 8000  # the default keep_top_k
    assert rows["reviews"]["human_hours"] == pytest.approx(8000 * 2 / 400)
    assert rows["caption"]["gpu_hours"] > 0 and plan["totals"]["gpu_hours"] > expected * 0.9
    two = _plan(cli, "--pool", "1000000", "--gpus", "2", "--gpu", "h100",
                "--catalog", tmp_path / "none.duckdb")
    assert _rows(two)["score-quality"]["wall_hours"] == pytest.approx(
        rows["score-quality"]["wall_hours"] / 2)
    assert two["totals"]["gpu_hours"] == pytest.approx(plan["totals"]["gpu_hours"])

    code, out, _ = cli("plan", "--pool", "1000000", "--gpu", "h100",
                       "--catalog", tmp_path / "none.duckdb")
    assert code == 0 and "score-aesthetic" in out and "select-review" in out
    assert f"GPU-hours on h100: {plan['totals']['gpu_hours']:.2f}" in out
    code, dry, _ = cli("run", "--dry-run", "--pool", "1000000", "--gpu", "h100",
                       "--catalog", tmp_path / "none.duckdb")
    assert code == 0 and f"GPU-hours on h100: {plan['totals']['gpu_hours']:.2f}" in dry
    assert not (tmp_path / "none.duckdb").exists()  # planning runs nothing, creates nothing
    code, _, err = cli("plan", "--pool", "10", "--gpu", "tpu9", "--catalog", tmp_path / "x")
    assert code == 2 and "--gpu 'tpu9'" in err


def _recorded(cat: Catalog, command: str, config: dict, counts: dict, status="done") -> None:
    finish_run(cat, start_run(cat, command, config, {}), status, counts)


def test_a_catalog_with_recorded_runs_uses_their_rates_and_pass_rates(catalog, cli):
    quality = ["maniqa", "clipiqa", "niqe"]
    _recorded(catalog, "score", {"metrics": quality, "device": "cuda", "gpu": H100},
              {"pending_images": 30_000, "seconds": 200.0})
    _recorded(catalog, "score", {"metrics": quality, "device": "cuda", "gpu": H100},
              {"pending_images": 6_000, "seconds": 160.0})  # 36,000 in 360 s: 100 img/s
    _recorded(catalog, "score", {"metrics": quality, "device": "cuda", "gpu": "NVIDIA A100"},
              {"pending_images": 1_000, "seconds": 1_000.0})  # another GPU kind: not used
    _recorded(catalog, "score", {"metrics": quality, "device": "cuda", "gpu": H100},
              {"pending_images": 9_000, "seconds": 1.0}, status="failed")  # not finished
    _recorded(catalog, "score", {"metrics": ["qalign_aesthetic"], "device": "cuda", "gpu": H100},
              {"pending_images": 3_000, "seconds": 100.0})
    ids = [f"{i:064x}" for i in range(100)]
    write_outcomes(catalog, pa.table({  # this pool's stage 1 keeps half
        "image_id": ids, "stage": ["clean"] * 100, "status": ["pass", "reject"] * 50,
        "reason": [None, "blurry"] * 50, "detail": [None] * 100}), run_id=0)

    plan = _plan(cli, "--pool", "1000000", "--gpu", "h100", "--catalog", catalog.path)
    rows = _rows(plan)
    assert (rows["clean"]["images_out"], rows["clean"]["out_from"]) == (500_000, "catalog")
    stage2 = rows["score-quality"]
    assert stage2["images_in"] == 450_000
    assert stage2["rate"] == pytest.approx(100.0) and stage2["rate_from"] == "catalog, 2 run(s)"
    assert stage2["gpu_hours"] == pytest.approx(450_000 / 100 / 3600)
    stage3 = rows["score-aesthetic"]
    assert stage3["rate"] == pytest.approx(30.0) and stage3["rate_from"] == "catalog, 1 run(s)"
    a100 = _rows(_plan(cli, "--pool", "1000000", "--gpu", "a100", "--catalog", catalog.path))
    assert a100["score-quality"]["rate"] == pytest.approx(1.0)  # that run, on its own kind
    assert a100["score-aesthetic"]["rate_from"] == "h100 x0.315"  # no A100 run: scaled table


def test_a_real_cpu_run_sets_the_cpu_rate(tmp_path, cli):
    write_photo_pool(tmp_path / "pool", 60, size=(128, 96))
    cat = tmp_path / "c.duckdb"
    assert cli("ingest", tmp_path / "pool", "--workers", "1", "--catalog", cat)[0] == 0
    code, out, err = cli("score", "--metrics", "niqe", "--stage-input", "ingest", "--device",
                         "cpu", "--decode-workers", "0", "--json", "--catalog", cat)
    assert code == 0, err
    run = json.loads(out)
    (tmp_path / "recipe.toml").write_text(
        '[[step]]\ncommand = "score"\nmetrics = ["niqe"]\nstage_input = "ingest"\n')
    plan = _plan(cli, "--recipe", tmp_path / "recipe.toml", "--gpu", "cpu", "--catalog", cat)
    row = plan["steps"][0]
    assert plan["pool"] == 60 and row["rate_from"] == "catalog, 1 run(s)"
    assert row["rate"] == pytest.approx(run["pending_images"] / run["seconds"], rel=1e-6)
