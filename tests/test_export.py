"""`hfaid export`: WebDataset/imagefolder round trips through webdataset and datasets, manifest
checksums, byte-identical re-runs, kill -9 + resume, refusals, and the catalog record."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from curation.export.plan import sample_key
from curation.export.run import verify_export
from curation.export.writers import member_name
from db.accounts import add_reviewer
from db.captions import RESULT_SCHEMA, merge_caption_files
from db.catalog import Catalog
from db.images import images_passing
from db.outcomes import write_outcomes
from db.review import REASON_TAGS, record_vote
from db.scores import write_scores
from hfaid_core.errors import HfaidError
from tests.conftest import write_photo_pool

REPO = Path(__file__).resolve().parents[1]
HFAID = [sys.executable, "-c", "import sys; from hfaid.cli import main; sys.exit(main())"]


@pytest.fixture(scope="module")
def curated_master(tmp_path_factory) -> dict:
    """10 real photos: 7 accepted by two reviewers (6 captioned, 1 flagged caption), 3 rejected,
    all scored; the shape of a catalog after review and captioning. Built once per module."""
    from hfaid.cli import main

    root = tmp_path_factory.mktemp("curated")
    pool = root / "pool"
    write_photo_pool(pool, 10)
    cat_path = root / "catalog.duckdb"
    assert main(["ingest", str(pool), "--workers", "1", "--catalog", str(cat_path)]) == 0
    cat = Catalog(cat_path, lock_timeout_s=10)
    ids = images_passing(cat, None)["image_id"].to_pylist()
    for name in ("ann", "bob"):
        add_reviewer(cat, name, "reviewer", "password-" + name)
    for i, image_id in enumerate(ids):
        decision = "accept" if i < 7 else "reject"
        for name in ("ann", "bob"):
            record_vote(cat, image_id, name, decision,
                        [REASON_TAGS[0]] if decision == "reject" else [])
    rows = [{"image_id": image_id, "model": "florence-tiny", "version": "florence-tiny@v1",
             "caption": f"A detailed photo, number {i}.", "flags": ["repetitive"] if i == 1 else [],
             "n_tokens": 8, "settings": "{}", "status": "pass", "reason": None, "detail": None}
            for i, image_id in enumerate(ids[:8]) if i != 6]
    pq.write_table(pa.Table.from_pylist(rows, schema=RESULT_SCHEMA), root / "caps.parquet")
    merge_caption_files(cat, [root / "caps.parquet"], run_id=1)
    write_scores(cat, pa.table({
        "image_id": ids * 2, "metric": ["maniqa"] * len(ids) + ["niqe"] * len(ids),
        "value": [0.5 + i / 100 for i in range(len(ids))] + [4.0 - i / 10 for i in range(len(ids))],
        "version": ["maniqa-1"] * len(ids) + ["niqe-1"] * len(ids),
    }), run_id=1)
    exportable = [ids[i] for i in (0, 2, 3, 4, 5)]  # accepted, unflagged caption
    return {"pool": pool, "catalog": cat_path, "ids": ids, "exportable": exportable}


@pytest.fixture
def curated(tmp_path: Path, curated_master: dict) -> dict:
    """A private copy of the curated catalog (the photos are shared, read-only)."""
    cat_path = tmp_path / "catalog.duckdb"
    shutil.copy(curated_master["catalog"], cat_path)
    return {**curated_master, "catalog": cat_path, "cat": Catalog(cat_path, lock_timeout_s=10)}


def _export(cli, curated: dict, out: Path, *args: str) -> tuple[int, str, str]:
    return cli("export", "--out", out, *args, "--catalog", curated["catalog"])


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_webdataset_export_reads_everywhere(tmp_path, cli, curated):
    import webdataset as wds

    out = tmp_path / "wds"
    code, stdout, err = _export(cli, curated, out, "--maxcount", "2")
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"selected": 7, "exported": 5, "image_formats": {"jpg": 5},
                                  "skipped": {"caption_flagged": 1, "no_caption": 1}}
    assert [s["name"] for s in manifest["shards"]] == [
        "shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    assert sorted(k for s in manifest["shards"] for k in s["keys"]) == sorted(curated["exportable"])
    assert verify_export(out) == []
    assert cli("verify-export", out)[0] == 0

    shards = [str(out / s["name"]) for s in manifest["shards"]]
    samples = list(wds.WebDataset(shards, shardshuffle=False))
    assert sorted(s["__key__"] for s in samples) == sorted(curated["exportable"])
    for s in samples:
        meta = json.loads(s["json"])
        src = Path(meta["path"])
        assert s["jpg"] == src.read_bytes()  # original bytes, no re-encode
        assert s["txt"].decode().startswith("A detailed photo")
        assert meta["image_id"] == s["__key__"] and (meta["width"], meta["height"]) == (320, 240)
        assert {(x["metric"], x["version"]) for x in meta["scores"]} == {
            ("maniqa", "maniqa-1"), ("niqe", "niqe-1")}
        assert meta["votes"]["accepts"] == 2 and meta["votes"]["reviewers"] == ["ann", "bob"]
        assert meta["votes"]["status"] == "accepted"
        assert meta["caption_model"] == "florence-tiny"

    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["HF_HUB_OFFLINE"] = "1"
    import datasets

    ds = datasets.load_dataset("webdataset", data_files={"train": shards}, split="train",
                               cache_dir=str(tmp_path / "hf"))
    assert len(ds) == 5
    assert all(t.startswith("A detailed photo") for t in ds["txt"])
    assert ds[0]["jpg"].size == (320, 240)

    readme = (out / "README.md").read_text()
    assert "| exported | 5 |" in readme and "| maniqa | higher |" in readme
    assert "| review | 10 | 7 | 3 | 0 |" in readme


def test_imagefolder_with_pairs_loads_in_datasets(tmp_path, cli, curated):
    import datasets

    out = tmp_path / "imf"
    code, _, err = _export(cli, curated, out, "--format", "imagefolder", "--pairs",
                           "--workers", "1")
    assert code == 0, err
    assert verify_export(out) == []
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    ds = datasets.load_dataset("imagefolder", data_dir=str(out), split="train",
                               cache_dir=str(tmp_path / "hf"))
    assert len(ds) == 5 and sorted(ds["image_id"]) == sorted(curated["exportable"])
    assert all(t.startswith("A detailed photo") for t in ds["text"])
    row = ds[0]
    assert row["image"].size == (320, 240) and row["lr"].size == (80, 60)
    assert row["degradation"].count(",") == 2 and "compression" in row["degradation"]
    assert json.loads(row["degradation_params"])["scale"] == 4


def test_pairs_in_webdataset_round_trip(tmp_path, cli, curated):
    import datasets

    out = tmp_path / "pairs"
    assert _export(cli, curated, out, "--pairs", "--scale", "2", "--workers", "1")[0] == 0
    shards = sorted(str(p) for p in out.glob("shard-*.tar"))
    with tarfile.open(shards[0]) as tar:
        names = tar.getnames()
    key = names[0].split(".")[0]
    assert names[:5] == [f"{key}.jpg", f"{key}.json", f"{key}.txt", f"{key}.lr.png",
                         f"{key}.degradation.txt"]
    ds = datasets.load_dataset("webdataset", data_files={"train": shards}, split="train",
                               cache_dir=str(tmp_path / "hf"))
    assert set(ds.column_names) >= {"jpg", "lr.png", "degradation.txt", "txt", "json"}
    assert ds[0]["lr.png"].size == (160, 120)
    assert ds[0]["degradation.txt"].endswith("compression")


def test_same_catalog_and_options_give_identical_bytes(tmp_path, cli, curated):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert _export(cli, curated, out, "--maxcount", "3", "--pairs", "--workers", "1")[0] == 0
    assert _files(a) == _files(b)
    # a different option is a different export id
    c = tmp_path / "c"
    assert _export(cli, curated, c, "--maxcount", "4")[0] == 0
    ids = [json.loads((x / "manifest.json").read_text())["export_id"] for x in (a, c)]
    assert ids[0] != ids[1]


def test_kill_9_mid_export_then_rerun(tmp_path, cli, curated):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = tmp_path / "killed"
    argv = [*HFAID, "export", "--out", str(out), "--status", "all", "--captions", "any",
            "--maxcount", "1", "--pairs", "--resize", "max:200", "--workers", "1",
            "--catalog", str(curated["catalog"])]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (out / "shard-000001.tar").exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "manifest.json").exists(), "export finished before it could be killed"
    # a half-written shard of the killed run, as a kill mid-write leaves it
    (out / "shard-000004.tar.tmp").write_bytes(b"partial")

    rerun = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert verify_export(out) == []
    assert not list(out.glob("*.tmp")) and not (out / ".hfaid-export.json").exists()
    clean = tmp_path / "clean"
    argv[argv.index(str(out))] = str(clean)
    assert cli(*argv[len(HFAID):])[0] == 0
    assert _files(out) == _files(clean)


def test_refusals(tmp_path, cli, curated):
    code, _, err = _export(cli, curated, curated["pool"] / "exp")
    assert code == 2 and "inside the image folder" in err
    pool = curated["pool"]
    code, _, err = _export(cli, curated, pool.parent / "other" / ".." / pool.name / "sub")
    assert code == 2 and "inside the image folder" in err
    code, _, err = _export(cli, curated, pool.parent)
    assert code == 2 and "contains the image folder" in err
    code, _, err = _export(cli, curated, tmp_path)
    assert code == 2 and "contains the catalog" in err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    code, _, err = _export(cli, curated, busy)
    assert code == 2 and "not empty" in err and "--overwrite" in err
    assert (busy / "notes.txt").read_text() == "mine"
    assert _export(cli, curated, busy, "--overwrite")[0] == 0
    assert not (busy / "notes.txt").exists() and verify_export(busy) == []
    code, _, err = _export(cli, curated, busy)
    assert code == 2 and "a finished export" in err
    code, _, err = _export(cli, curated, tmp_path / "x", "--status", "nonsense")
    assert code == 2 and "--status" in err
    code, _, err = _export(cli, curated, tmp_path / "x", "--resize", "huge")
    assert code == 2 and "--resize" in err
    code, _, err = _export(cli, curated, tmp_path / "x", "--format", "zip")
    assert code == 2 and "--format" in err
    with pytest.raises(HfaidError, match="sample key"):
        sample_key("../../etc")
    with pytest.raises(HfaidError, match="sample key"):
        sample_key("abc.def")
    with pytest.raises(ValueError, match="unsafe"):
        member_name("lr/../../x", "png")


def test_export_is_recorded_with_outcomes(tmp_path, cli, curated):
    out = tmp_path / "rec"
    assert _export(cli, curated, out, "--status", "all", "--captions", "any")[0] == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["exported"] == 10  # flagged and missing captions allowed
    cat: Catalog = curated["cat"]
    with cat.connect(read_only=True) as con:
        export_id, n_items = con.execute(
            "SELECT e.export_id, count(i.image_id) FROM exports e "
            "JOIN export_items i USING (run_id) GROUP BY ALL").fetchall()[0]
        outcomes = con.execute("SELECT status, count(*) FROM stage_outcomes "
                               "WHERE stage = 'export' GROUP BY ALL").fetchall()
    assert export_id == manifest["export_id"] and n_items == 10
    assert outcomes == [("pass", 10)]
    # default status, one source file changed after review: left out with its reason
    target = next(Path(p) for p in sorted(curated["pool"].iterdir())
                  if sample_key(_sha(Path(p))) == curated["exportable"][0])
    original = target.read_bytes()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(target, format="JPEG")
    try:
        code, stdout, _ = _export(cli, curated, tmp_path / "rec2")
    finally:
        target.write_bytes(original)  # the photos are shared by the module's tests
    assert code == 0 and "file_changed" in stdout
    with cat.connect(read_only=True) as con:
        reasons = dict(con.execute("SELECT reason, count(*) FROM stage_outcomes "
                                   "WHERE stage = 'export' AND status = 'reject' "
                                   "GROUP BY ALL").fetchall())
    assert reasons == {"file_changed": 1, "caption_flagged": 1, "no_caption": 1}


def test_resize_reencodes_and_updates_metadata(tmp_path, cli, curated):
    out = tmp_path / "small"
    assert _export(cli, curated, out, "--resize", "crop:128", "--image-format", "png")[0] == 0
    with tarfile.open(next(out.glob("shard-*.tar"))) as tar:
        names = tar.getnames()
        png = next(n for n in names if n.endswith(".png"))
        meta = json.loads(tar.extractfile(png.replace(".png", ".json")).read())
        img = Image.open(tar.extractfile(png))
        assert img.size == (128, 128) and img.format == "PNG"
    assert (meta["width"], meta["height"]) == (128, 128)


def test_status_without_review_exports_demo_style(tmp_path, cli, curated):
    """Before review and captions exist: --status all --captions any still exports."""
    cat: Catalog = curated["cat"]
    ids = curated["ids"]
    write_outcomes(cat, pa.table({"image_id": ids, "stage": ["clean"] * len(ids),
                                  "status": ["pass"] * len(ids), "reason": [None] * len(ids),
                                  "detail": [""] * len(ids)}), run_id=1)
    out = tmp_path / "clean-set"
    code, stdout, err = _export(cli, curated, out, "--status", "passed:clean", "--captions", "any")
    assert code == 0, err
    assert json.loads((out / "manifest.json").read_text())["counts"]["exported"] == 10


def _sha(path: Path) -> str:
    from curation.ingest.scan import content_id

    return content_id(path.read_bytes())


def test_config_sections_load(tmp_path):
    from hfaid_core.config import load_config

    path = tmp_path / "c.toml"
    path.write_text('[export]\nformat = "imagefolder"\npairs = true\n'
                    '[degrade]\nsinc_prob = 0.2\nnoise_range = [1, 10]\n')
    cfg = load_config(path)
    assert cfg.export.format == "imagefolder" and cfg.export.pairs
    assert cfg.degrade.sinc_prob == 0.2 and cfg.degrade.noise_range == [1.0, 10.0]
    path.write_text("[export]\nshard_count = 3\n")
    with pytest.raises(HfaidError, match="shard_count"):
        load_config(path)


def test_shard_bytes_equal_tarfile_output(tmp_path):
    """The direct tar writer produces exactly what the standard library would."""
    import io

    from curation.export.samples import Sample
    from curation.export.writers import _tarinfo, write_shards

    samples = [Sample("k1", "k1", [("jpg", b"x" * 1000), ("json", b"{}"), ("txt", b"")]),
               Sample("k2", "k2", [("png", b"y" * 512), ("json", b"{}"), ("txt", b"hi")])]
    (rec,) = write_shards(tmp_path, samples, 10, 10**9, 0)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for s in samples:
            for suffix, data in s.files:
                tar.addfile(_tarinfo(f"{s.key}.{suffix}", len(data)), io.BytesIO(data))
    assert (tmp_path / rec.name).read_bytes() == buf.getvalue()
    assert rec.keys == ["k1", "k2"] and rec.bytes == len(buf.getvalue())
