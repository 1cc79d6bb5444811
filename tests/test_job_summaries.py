"""Per-image jobs never fail silently: errors and top reasons in the summary and in --json, exit
3 with the reason in one line when every image failed; one stage vocabulary for --stage-input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pytest
import typer

from captioning.tiny_model import build_random_florence2
from db.catalog import Catalog
from db.outcomes import write_outcomes
from db.stages import STAGE_ORDER
from hfaid.app import app
from hfaid.jobs import EXIT_ALL_FAILED
from tests.conftest import write_photo_pool


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return build_random_florence2(tmp_path_factory.mktemp("florence2") / "tiny-florence2")


@pytest.fixture(scope="module")
def broken_model(tmp_path_factory) -> Path:
    """A Florence-2 that loads but whose generate fails on every image: its generation config
    starts decoding at a token id outside its vocabulary (a mismatched checkpoint)."""
    folder = build_random_florence2(tmp_path_factory.mktemp("florence2") / "broken")
    config = json.loads((folder / "generation_config.json").read_text())
    config["decoder_start_token_id"] = 100_000
    (folder / "generation_config.json").write_text(json.dumps(config))
    return folder


def _ingested(tmp_path: Path, cli, count: int, size=(128, 96)) -> tuple[Catalog, list[str]]:
    write_photo_pool(tmp_path / "pool", count, size=size)
    cat = Catalog(tmp_path / "c.duckdb", lock_timeout_s=30)
    assert cli("ingest", tmp_path / "pool", "--workers", "1", "--catalog", cat.path)[0] == 0
    with cat.connect(read_only=True) as con:
        ids = [r[0] for r in con.execute("SELECT image_id FROM images ORDER BY 1").fetchall()]
    return cat, ids


def _pass(cat: Catalog, stage: str, ids: list[str]) -> None:
    write_outcomes(cat, pa.table({"image_id": ids, "stage": [stage] * len(ids),
                                  "status": ["pass"] * len(ids), "reason": [None] * len(ids),
                                  "detail": [None] * len(ids)}), run_id=0)


def _one_line_error(code: int, err: str) -> str:
    """The one `error:` line (model loaders may draw progress bars on stderr before it)."""
    assert code == EXIT_ALL_FAILED, err
    lines = err.strip().splitlines()
    assert [line for line in lines if "error" in line.lower()] == lines[-1:]
    assert "Traceback" not in err
    return lines[-1]


def test_caption_where_generate_fails_on_every_image_exits_3_with_the_reason(
        broken_model, tmp_path, cli):
    cat, ids = _ingested(tmp_path, cli, 4)
    _pass(cat, "review", ids)
    code, out, err = cli("caption", "--model", broken_model, "--device", "cpu",
                         "--catalog", cat.path)
    line = _one_line_error(code, err)
    assert line.startswith("error: caption: every image failed (4 of 4): generate_failed 4; "
                           "first: IndexError")
    assert "images tried" in out and "error: generate_failed" in out  # the summary says it too
    code, out, err = cli("caption", "--model", broken_model, "--device", "cpu", "--json",
                         "--catalog", cat.path)  # nothing was captioned: they are tried again
    summary = json.loads(out)
    assert code == EXIT_ALL_FAILED and summary["all_failed"] is True
    assert summary["errors"] == 4 and summary["top_error_reasons"] == {"generate_failed": 4}
    assert summary["captions_added"] == 0


def test_score_counts_errors_and_exits_3_only_when_all_failed(tmp_path, cli):
    cat, ids = _ingested(tmp_path, cli, 5, size=(80, 60))  # under NIQE's 96-px minimum
    args = ["score", "--metrics", "niqe", "--stage-input", "all", "--device", "cpu",
            "--decode-workers", "0", "--catalog", cat.path]
    code, out, err = cli(*args)
    assert _one_line_error(code, err).startswith(
        "error: score: every image failed (5 of 5): too_small 5; first: niqe: ")
    write_photo_pool(tmp_path / "more", 3, size=(128, 96), quality=80)
    assert cli("ingest", tmp_path / "more", "--workers", "1", "--catalog", cat.path)[0] == 0
    code, out, err = cli(*args, "--json")  # the 5 small ones failed again, 3 were scored
    summary = json.loads(out)
    assert code == 0, err
    assert (summary["pending_images"], summary["errors"], summary["all_failed"]) == (8, 5, False)
    assert summary["top_error_reasons"] == {"too_small": 5}


def test_ingest_of_only_unreadable_files_exits_3(tmp_path, cli):
    pool = tmp_path / "pool"
    pool.mkdir()
    for i in range(3):
        os.symlink(tmp_path / f"gone{i}.jpg", pool / f"link{i}.jpg")
    code, out, err = cli("ingest", pool, "--catalog", tmp_path / "c.duckdb", "--json")
    assert _one_line_error(code, err).startswith(
        "error: ingest: every image failed (3 of 3): broken_symlink 3; first: ")
    summary = json.loads(out)
    assert summary["errors"] == 3 and summary["all_failed"] is True


def test_export_of_vanished_files_exits_3(tmp_path, cli):
    cat, ids = _ingested(tmp_path, cli, 3)
    for path in (tmp_path / "pool").iterdir():
        path.unlink()  # deleted under the catalog
    code, out, err = cli("export", "--out", tmp_path / "out", "--status", "all", "--captions",
                         "any", "--workers", "1", "--catalog", cat.path)
    assert _one_line_error(code, err).startswith(
        "error: export: every image failed (3 of 3): file_missing 3")


def _size(out: str) -> int:
    return json.loads(out)["pending_images"]


def test_every_stage_input_option_takes_every_funnel_stage_with_one_meaning(
        tiny_model, tmp_path, cli):
    commands = typer.main.get_command(app).commands
    with_stage_input = {name for name, c in commands.items()
                        if any(p.name == "stage_input" for p in c.params)}
    assert with_stage_input == {"score", "caption", "review"}  # a new one belongs in this test

    cat, ids = _ingested(tmp_path, cli, len(STAGE_ORDER) + 1)
    passing = {None: ids}
    for k, stage in enumerate(STAGE_ORDER[1:], 1):  # a funnel: each stage keeps one fewer
        passing[stage] = ids[: len(ids) - k]
        _pass(cat, stage, passing[stage])
    names = {stage: passing[None if stage in ("ingest", "all") else
                            "review" if stage == "accepted" else stage]
             for stage in (*STAGE_ORDER, "all", "accepted")}
    funnel = {s["stage"]: s["passed"] for s in json.loads(
        cli("funnel", "--json", "--catalog", cat.path)[1])["stages"]}
    assert set(funnel) == set(STAGE_ORDER)  # the funnel shows each of them...
    for stage in STAGE_ORDER:  # ...with the passed count each command reads
        assert funnel[stage] == len(names[stage])

    for stage, members in names.items():
        code, out, err = cli("review", "--dry-run", "--stage-input", stage, "--catalog", cat.path)
        assert code == 0 and f"review queue: {len(members)} images" in out, (stage, err)

    scored: set[str] = set()
    captioned: set[str] = set()
    for stage, members in sorted(names.items(), key=lambda kv: len(kv[1])):
        code, out, err = cli("score", "--metrics", "niqe", "--stage-input", stage, "--device",
                             "cpu", "--decode-workers", "0", "--json", "--catalog", cat.path)
        assert code == 0 and _size(out) == len(set(members) - scored), (stage, err)
        scored |= set(members)
        code, out, err = cli("caption", "--model", tiny_model, "--device", "cpu", "--stage-input",
                             stage, "--max-new-tokens", "4", "--json", "--catalog", cat.path)
        assert code == 0 and json.loads(out)["images"] == len(set(members) - captioned), stage
        captioned |= set(members)
    code, _, err = cli("score", "--metrics", "niqe", "--stage-input", "qualty", "--catalog",
                       cat.path)
    assert code == 2 and "'qualty' is not a stage of the funnel; use one of: ingest, clean" in err
