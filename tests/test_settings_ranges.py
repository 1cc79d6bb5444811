"""Config and command-line numbers are checked when they arrive, one line each (issue 26)."""

from __future__ import annotations

import dataclasses

import pyarrow as pa
import pytest

from db.catalog import Catalog
from db.outcomes import write_outcomes
from hfaid_core import config as config_module
from hfaid_core.settings import caption, decode, degrade, export, finetune, review, score, stage1
from tests.conftest import write_photo_pool


def _rows(catalog: Catalog, sql: str) -> list[tuple]:
    with catalog.connect(read_only=True) as con:
        return con.execute(sql).fetchall()


def test_a_negative_batch_size_is_refused_instead_of_dropping_every_image(cli, catalog, tmp_path):
    """The issue's case: `--batch-size -3` scored nothing, exit 0, run "done", and left the
    earlier outcomes standing. Now: one line, exit 2, no run, nothing touched."""
    pool = tmp_path / "pool"
    write_photo_pool(pool, 3, size=(128, 112))
    assert cli("ingest", pool, "--catalog", catalog.path, "--workers", "1")[0] == 0
    ids = [r[0] for r in _rows(catalog, "SELECT image_id FROM images")]
    stale = pa.table({"image_id": ids, "stage": ["score"] * 3, "status": ["error"] * 3,
                      "reason": ["old"] * 3, "detail": [None] * 3})
    write_outcomes(catalog, stale, run_id=0)
    runs_before = _rows(catalog, "SELECT count(*) FROM runs")

    code, out, err = cli("score", "--metrics", "niqe", "--stage-input", "all", "--device", "cpu",
                         "--batch-size", "-3", "--catalog", catalog.path)
    assert code == 2
    assert err.strip() == "error: --batch-size = -3: must be >= 0"
    assert _rows(catalog, "SELECT count(*) FROM runs") == runs_before
    assert _rows(catalog, "SELECT DISTINCT reason FROM stage_outcomes") == [("old",)]

    toml = tmp_path / "bad.toml"
    toml.write_text("[score]\nbatch_size = -3\n")
    code, _, err = cli("score", "--metrics", "niqe", "--config", toml, "--catalog", catalog.path)
    assert code == 2 and err.strip() == f"error: {toml}.score.batch_size = -3: must be >= 0"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[runner]\nworkers = -3\n", "runner.workers = -3: must be >= 0"),
        ("[runner]\nshard_size = 0\n", "runner.shard_size = 0: must be >= 1"),
        ("[catalog]\nlock_timeout_s = -5\n", "catalog.lock_timeout_s = -5.0: must be >= 0"),
        ("[clean]\nmin_entropy = nan\n", "clean.min_entropy = nan: must be between 0 and 8"),
        ("[decode]\nmax_pixels = 0\n", "decode.max_pixels = 0: must be >= 1"),
        ("[review]\npreview_quality = 101\n", "review.preview_quality = 101: must be between"),
    ],
)
def test_out_of_range_config_values_are_one_line_errors(cli, catalog, tmp_path, toml, message):
    path = tmp_path / "c.toml"
    path.write_text(toml)
    code, _, err = cli("funnel", "--config", path, "--catalog", catalog.path)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize(
    "argv",
    [
        ("ingest", "POOL", "--workers", "-2"),
        ("clean", "--workers", "-1"),
        ("dedup", "--max-distance", "40"),
        ("score", "--metrics", "niqe", "--workers", "0"),
        ("score", "--metrics", "niqe", "--decode-workers", "-5"),
        ("export", "--out", "OUT", "--maxcount", "0"),
        ("runs", "--limit", "0"),
    ],
)
def test_out_of_range_command_line_numbers_are_one_line_errors(cli, catalog, tmp_path, argv):
    (tmp_path / "pool").mkdir()
    argv = [a.replace("POOL", str(tmp_path / "pool")).replace("OUT", str(tmp_path / "o"))
            for a in argv]
    code, _, err = cli(*argv, "--catalog", catalog.path)
    assert code == 2 and "must be" in err and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and "internal error" not in err


def test_every_number_in_every_section_declares_its_range():
    """A new numeric key without a range would take any value again: each int/float field
    of every section (except the [degrade] lists' scalars that are free) has one."""
    sections = [config_module.CatalogConfig, config_module.RunnerConfig, decode.DecodeConfig,
                stage1.CleanConfig, stage1.DedupConfig, score.ScoreConfig, caption.CaptionConfig,
                review.ReviewConfig, export.ExportConfig, finetune.FinetuneConfig,
                degrade.DegradationConfig]
    missing = [f"{cls.__name__}.{f.name}" for cls in sections for f in dataclasses.fields(cls)
               if f.type in ("int", "float") and "range" not in f.metadata]
    assert missing == []
