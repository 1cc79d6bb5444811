"""Captioning: a tiny random Florence-2 saved to disk and loaded through `hfaid caption --model`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from captioning.captioner import Captioner, GenerationSettings, load_rgb
from captioning.checks import CheckSettings, check_caption
from captioning.tiny_model import build_random_florence2
from db.captions import latest_captions, source_captions
from db.catalog import Catalog
from db.outcomes import write_outcomes
from tests.conftest import write_photo_pool

GOOD = ("A wooden boat rests on a calm lake in front of green hills, with white clouds "
        "drifting across a bright blue sky.")
# Small, fast generation for tests; the checks then flag `truncated` for captions at the limit.
FAST = ["--num-beams", "1", "--max-new-tokens", "10", "--batch-size", "3"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return build_random_florence2(tmp_path_factory.mktemp("florence2") / "tiny-florence2")


def _pool_catalog(tmp_path: Path, cli, count: int = 6, accepted: int = 5) -> tuple[Catalog, Path]:
    """Ingest `count` photos and mark the first `accepted` as passing stage review."""
    pool = tmp_path / "pool"
    write_photo_pool(pool, count, size=(96, 72))
    cat = Catalog(tmp_path / "c.duckdb", lock_timeout_s=30)
    code, _, err = cli("ingest", pool, "--catalog", cat.path, "--workers", "1")
    assert code == 0, err
    with cat.connect(read_only=True) as con:
        ids = [r[0] for r in con.execute("SELECT image_id FROM images ORDER BY 1").fetchall()]
    outcomes = pa.table({
        "image_id": ids, "stage": ["review"] * len(ids),
        "status": ["pass"] * accepted + ["reject"] * (len(ids) - accepted),
        "reason": [None] * accepted + ["rejected"] * (len(ids) - accepted),
        "detail": [None] * len(ids),
    })
    write_outcomes(cat, outcomes, run_id=0)
    return cat, pool


def _rows(cat: Catalog, sql: str) -> list[tuple]:
    with cat.connect(read_only=True) as con:
        return con.execute(sql).fetchall()


# --- checks -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "truncated", "flag"), [
    ("", False, "empty"),
    ("   ", False, "empty"),
    ("A dog.", False, "too_short"),
    (GOOD, True, "truncated"),
    ("The image shows a cat. The image shows a cat. The image shows a cat. The image shows "
     "a cat. The image shows a cat.", False, "repetitive"),
    ("a a a a a a a a a a a a a a a a", False, "repetitive"),
    ("Stock photo of a smiling businessman shaking hands in a bright modern office, "
     "royalty free.", False, "boilerplate"),
])
def test_checks_flag_planted_bad_captions(text, truncated, flag):
    assert flag in check_caption(text, truncated, CheckSettings())


def test_checks_pass_a_good_detailed_caption():
    assert check_caption(GOOD, False, CheckSettings()) == []


# --- the captioner through the real loading path ------------------------------------------------

def test_batched_and_one_by_one_greedy_captions_are_identical(tiny_model, tmp_path):
    paths = write_photo_pool(tmp_path / "imgs", 5, size=(120, 90))
    images = [load_rgb(str(p)) for p in paths]
    captioner = Captioner(tiny_model, device="cpu",
                          settings=GenerationSettings(num_beams=1, max_new_tokens=12))
    batched = captioner.caption(images)
    single = [captioner.caption([im])[0] for im in images]
    assert batched == single
    assert len({r.text for r in batched}) > 1, "the tiny model should tell images apart"
    assert all(r.text and r.n_tokens <= 12 for r in batched)


def test_truncation_is_detected_at_the_token_limit(tiny_model, tmp_path):
    image = load_rgb(str(write_photo_pool(tmp_path / "imgs", 1)[0]))
    short = Captioner(tiny_model, device="cpu",
                      settings=GenerationSettings(num_beams=2, max_new_tokens=3))
    (result,) = short.caption([image])
    assert result.truncated and result.n_tokens == 3


# --- hfaid caption / captions ---------------------------------------------------------------------

def test_caption_command_captions_accepted_images_once(tiny_model, tmp_path, cli):
    cat, _ = _pool_catalog(tmp_path, cli)
    code, out, err = cli("caption", "--model", tiny_model, *FAST, "--catalog", cat.path)
    assert code == 0, err
    assert "captions added" in out
    rows = _rows(cat, "SELECT image_id, model, version, caption, flags FROM captions")
    assert len(rows) == 5 and all(r[1] == str(tiny_model) for r in rows)
    assert all(":b1-t10" in r[2] for r in rows)
    outcomes = _rows(cat, "SELECT status, reason FROM stage_outcomes WHERE stage = 'caption'")
    assert len(outcomes) == 5
    for (status, reason), row in zip(sorted(outcomes), sorted(rows, key=lambda r: bool(r[4])),
                                     strict=True):
        assert (status == "pass") == (not row[4])
        assert reason is None or reason.startswith("caption_")

    # Re-running finds nothing to do: one row per (image, version).
    code, _, err = cli("caption", "--model", tiny_model, *FAST, "--catalog", cat.path)
    assert code == 0, err
    assert _rows(cat, "SELECT count(*) FROM captions")[0][0] == 5

    code, out, _ = cli("captions", "--format", "jsonl", "--catalog", cat.path)
    assert code == 0
    listed = [json.loads(line) for line in out.splitlines()]
    assert len(listed) == 5
    assert set(listed[0]) == {"image_id", "path", "caption", "model", "flags"}
    assert all(Path(r["path"]).is_file() for r in listed)
    code, out, err = cli("captions", "--format", "csv", "--catalog", cat.path)
    assert code == 0, err
    assert out.splitlines()[0] == '"image_id","path","caption","model","flags"'
    assert len(out.splitlines()) == 6
    table = latest_captions(cat)
    assert table.column_names == ["image_id", "caption", "model", "version", "flags"]
    assert table.num_rows == 5


def test_recaption_flagged_uses_other_settings_and_a_new_version(tiny_model, tmp_path, cli):
    cat, _ = _pool_catalog(tmp_path, cli, count=4, accepted=4)
    config = tmp_path / "c.toml"
    config.write_text("[caption]\nrecaption_num_beams = 2\nrecaption_max_new_tokens = 6\n"
                      "recaption_repetition_penalty = 1.5\nrecaption_no_repeat_ngram_size = 2\n")
    # max 10 tokens and min_words default 8: the tiny model's captions get flagged.
    code, _, err = cli("caption", "--model", tiny_model, *FAST, "--catalog", cat.path,
                       "--config", config)
    assert code == 0, err
    code, out, _ = cli("captions", "--flagged", "--format", "jsonl", "--catalog", cat.path,
                       "--config", config)
    flagged = [json.loads(line) for line in out.splitlines()]
    assert flagged and all(r["flags"] for r in flagged)

    code, _, err = cli("caption", "--model", tiny_model, "--recaption", "flagged",
                       "--catalog", cat.path, "--config", config)
    assert code == 0, err
    versions = _rows(cat, "SELECT version, count(*) FROM captions GROUP BY 1 ORDER BY 1")
    assert len(versions) == 2
    recaptioned = [v for v, n in versions if "b2-t6-rp1.5-nr2" in v]
    assert recaptioned and dict(versions)[recaptioned[0]] == len(flagged)
    # A flagged re-caption is the newest flagged one, so it becomes the image's caption.
    latest = {r["image_id"]: r["version"] for r in latest_captions(cat).to_pylist()}
    assert {latest[r["image_id"]] for r in flagged} == {recaptioned[0]}
    # Nothing left to re-caption at these settings.
    code, _, _ = cli("caption", "--model", tiny_model, "--recaption", "flagged",
                     "--catalog", cat.path, "--config", config)
    assert _rows(cat, "SELECT count(*) FROM captions")[0][0] == 4 + len(flagged)


def test_unreadable_image_is_an_error_outcome_not_a_traceback(tiny_model, tmp_path, cli):
    cat, pool = _pool_catalog(tmp_path, cli, count=3, accepted=3)
    (pool / "img_00001.jpg").write_bytes(b"not an image any more")
    code, _, err = cli("caption", "--model", tiny_model, *FAST, "--catalog", cat.path)
    assert code == 0, err
    errors = _rows(cat, "SELECT status, reason, detail FROM stage_outcomes "
                        "WHERE stage = 'caption' AND status = 'error'")
    assert len(errors) == 1 and errors[0][1] == "image_unreadable" and errors[0][2]
    assert _rows(cat, "SELECT count(*) FROM captions")[0][0] == 2


@pytest.mark.slow
def test_kill_minus_nine_and_rerun_leaves_no_duplicate_captions(tiny_model, tmp_path, cli):
    cat, _ = _pool_catalog(tmp_path, cli, count=10, accepted=10)
    config = tmp_path / "c.toml"
    config.write_text("[caption]\nshard_size = 1\nbatch_size = 1\nnum_beams = 1\n"
                      "max_new_tokens = 10\n[catalog]\nlock_timeout_s = 30\n")
    argv = [sys.executable, "-m", "hfaid.cli", "caption", "--model", str(tiny_model),
            "--catalog", str(cat.path), "--config", str(config)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    results = cat.work_dir
    deadline = time.monotonic() + 120
    # Kill once the first shard result exists: merged or not, the re-run must cope.
    while time.monotonic() < deadline and proc.poll() is None:
        if any(results.glob("caption-*/run-*/*.parquet")) or any(
                results.glob("caption-*/run-*/.tmp-*")):
            break
        time.sleep(0.05)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert killed, "the caption job finished before the kill; use a larger pool"
    rerun = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert _rows(cat, "SELECT count(*), count(DISTINCT (image_id, version)) FROM captions") == [
        (10, 10)]
    assert _rows(cat, "SELECT count(*) FROM stage_outcomes WHERE stage = 'caption'")[0][0] == 10


# --- source captions ------------------------------------------------------------------------------

def test_import_source_captions_from_sidecars_and_a_table(tmp_path, cli):
    cat, pool = _pool_catalog(tmp_path, cli, count=4, accepted=0)
    (pool / "img_00000.txt").write_text("a photo of a lake\n")
    (pool / "img_00001.json").write_text(json.dumps({"caption": "rocket launch", "url": "x"}))
    (pool / "img_00002.json").write_text("{broken")
    pq.write_table(pa.table({"file": ["pool/img_00003.jpg", "pool/missing.jpg"],
                             "text": ["LAION says: astronaut", "nobody"]}), tmp_path / "t.parquet")
    code, _, err = cli("captions", "import", "--table", tmp_path / "t.parquet", "--column",
                       "text", "--path-column", "file", "--catalog", cat.path)
    assert code == 0, err
    assert "unreadable sidecar" in err and "img_00002.json" in err
    got = sorted((r["caption"], r["source"]) for r in source_captions(cat).to_pylist())
    assert got == [("LAION says: astronaut", "table:t.parquet"),
                   ("a photo of a lake", "sidecar_txt"), ("rocket launch", "sidecar_json")]
    # Re-importing replaces rather than duplicates.
    cli("captions", "import", "--catalog", cat.path)
    assert source_captions(cat).num_rows == 3


# --- errors and the demo's skip -------------------------------------------------------------------

def test_missing_weights_is_a_clear_error_or_a_skip_note(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("HFAID_WEIGHTS_DIR", str(tmp_path / "no-weights"))
    cat = tmp_path / "c.duckdb"
    code, _, err = cli("caption", "--catalog", cat)
    assert code == 2 and "hfaid weights fetch florence2-large" in err
    code, out, _ = cli("caption", "--if-available", "--catalog", cat)
    assert code == 0 and "caption skipped" in out


@pytest.mark.parametrize(("args", "message"), [
    (["--stage-input", "nonsense"], "is not a stage"),
    (["--recaption", "all"], "only 'flagged'"),
    (["--model", "/no/such/model"], "neither a model folder"),
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, cli, args, message, tiny_model):
    argv = ["caption", *args, "--catalog", tmp_path / "c.duckdb"]
    if "--model" not in args:
        argv += ["--model", tiny_model]
    code, _, err = cli(*argv)
    assert code == 2 and message in err and "Traceback" not in err


def test_unknown_caption_config_key_is_rejected(tmp_path, cli):
    config = tmp_path / "c.toml"
    config.write_text("[caption]\nbeams = 3\n")
    code, _, err = cli("caption", "--config", config, "--catalog", tmp_path / "c.duckdb")
    assert code == 2 and "unknown key(s) beams" in err


@pytest.mark.gpu
def test_gpu_half_precision_batched_captions(tiny_model, tmp_path):
    images = [load_rgb(str(p)) for p in write_photo_pool(tmp_path / "imgs", 4)]
    for dtype in ("float16", "bfloat16"):
        captioner = Captioner(tiny_model, device="cuda", dtype=dtype,
                              settings=GenerationSettings(num_beams=3, max_new_tokens=12))
        assert captioner.model.dtype == getattr(torch, dtype)
        results = captioner.caption(images)
        assert len(results) == 4 and all(r.n_tokens <= 12 for r in results)
