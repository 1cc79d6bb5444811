"""Ingest: sources of every kind, content identity, skip-unchanged re-runs, recorded errors."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from db.catalog import Catalog
from tests.conftest import write_photo_pool


def _rows(cat: Catalog, sql: str) -> list[tuple]:
    with cat.connect(read_only=True) as con:
        return con.execute(sql).fetchall()


def test_folder_recursive_case_insensitive_and_same_bytes_at_two_paths(tmp_path: Path, cli):
    pool = tmp_path / "pool"
    paths = write_photo_pool(pool / "a" / "b", 5)
    shutil.copy(paths[0], pool / "COPY.JPG")  # same bytes, uppercase extension
    (pool / "notes.md").write_text("not an image extension: ignored")
    catalog = tmp_path / "c.duckdb"
    code, out, err = cli("ingest", pool, "--catalog", catalog, "--workers", "2")
    assert code == 0, err
    cat = Catalog(catalog)
    assert _rows(cat, "SELECT count(*) FROM images") == [(5,)]
    assert _rows(cat, "SELECT count(*) FROM paths") == [(6,)]
    (n_paths,) = _rows(
        cat,
        "SELECT count(*) FROM paths WHERE image_id = "
        "(SELECT image_id FROM paths WHERE path LIKE '%COPY.JPG')",
    )[0]
    assert n_paths == 2
    width, height, fmt = _rows(cat, "SELECT width, height, format FROM images LIMIT 1")[0]
    assert (width, height, fmt) == (320, 240, "JPEG")


def test_path_lists_parquet_and_csv_sources(tmp_path: Path, cli):
    paths = write_photo_pool(tmp_path / "imgs", 6)
    listing = tmp_path / "list.txt"
    listing.write_text(
        "# comment\n" + "\n".join(os.path.relpath(p, tmp_path) for p in paths[:2]) + "\n"
    )
    table = tmp_path / "t.parquet"
    pq.write_table(pa.table({"file": [str(p) for p in paths[2:4]]}), table)
    csv = tmp_path / "t.csv"
    csv.write_text("path,label\n" + "".join(f"{p},x\n" for p in paths[4:]))
    config = tmp_path / "c.toml"
    config.write_text('[ingest]\npath_column = "file"\n')
    catalog = tmp_path / "c.duckdb"
    assert cli("ingest", listing, table, "--catalog", catalog, "--config", config)[0] == 0
    assert cli("ingest", csv, "--catalog", catalog)[0] == 0
    assert _rows(Catalog(catalog), "SELECT count(*) FROM images") == [(6,)]
    code, _, err = cli("ingest", table, "--catalog", catalog)  # default column "path" is absent
    assert code == 2 and "has no column 'path'" in err


def test_rerun_skips_unchanged_and_rereads_changed_files(tmp_path: Path, cli):
    pool = tmp_path / "pool"
    paths = write_photo_pool(pool, 8)
    catalog = tmp_path / "c.duckdb"
    assert cli("ingest", pool, "--catalog", catalog, "--workers", "1")[0] == 0
    code, out, _ = cli("ingest", pool, "--catalog", catalog, "--workers", "1")
    assert code == 0
    runs = _rows(Catalog(catalog), "SELECT counts FROM runs ORDER BY run_id")
    assert (
        json.loads(runs[-1][0])["read"] == 0 and json.loads(runs[-1][0])["skipped_unchanged"] == 8
    )
    Image.new("RGB", (50, 40), (1, 2, 3)).save(paths[0])  # new content at an old path
    assert cli("ingest", pool, "--catalog", catalog, "--workers", "1")[0] == 0
    runs = _rows(Catalog(catalog), "SELECT counts FROM runs ORDER BY run_id")
    assert json.loads(runs[-1][0])["read"] == 1
    ((w, h),) = _rows(
        Catalog(catalog),
        f"SELECT i.width, i.height FROM paths p JOIN images i "
        f"USING (image_id) WHERE p.path = '{paths[0]}'",
    )
    assert (w, h) == (50, 40)


def test_unreadable_paths_are_recorded_with_reasons(tmp_path: Path, cli):
    pool = tmp_path / "pool"
    write_photo_pool(pool, 2)
    os.symlink(tmp_path / "nowhere.jpg", pool / "dangling.jpg")
    (pool / "folder.jpg").mkdir()
    (pool / "empty.jpg").write_bytes(b"")
    odd = os.fsencode(str(pool)) + b"/bad\xffname.jpg"
    with open(odd, "wb") as fh:
        fh.write(b"x")
    catalog = tmp_path / "c.duckdb"
    code, _, err = cli("ingest", pool, "--catalog", catalog)
    assert code == 0, err
    errors = dict(
        _rows(
            Catalog(catalog),
            "SELECT regexp_extract(path, '[^/]+$'), error FROM paths WHERE error IS NOT NULL",
        )
    )
    assert errors == {
        "dangling.jpg": "broken_symlink",
        "folder.jpg": "not_a_file",
        "bad\\xffname.jpg": "non_utf8_filename",
    }
    # An empty file is content (it hashes); the decode check rejects it, ingest keeps it.
    assert _rows(Catalog(catalog), "SELECT header_error FROM images WHERE bytes = 0") == [
        ("empty file",)
    ]
    code, out, _ = cli("funnel", "--json", "--catalog", catalog)
    ingest = json.loads(out)["stages"][0]
    assert ingest["stage"] == "ingest" and ingest["errors"] == 3
    assert ingest["reasons"] == {"broken_symlink": 1, "not_a_file": 1, "non_utf8_filename": 1}


def test_bad_arguments_and_missing_sources_exit_nonzero_with_one_line(tmp_path: Path, cli):
    catalog = tmp_path / "c.duckdb"
    code, _, err = cli("ingest", tmp_path / "missing", "--catalog", catalog)
    assert code == 2 and err.strip() == f"error: source {tmp_path / 'missing'} does not exist"
    code, _, err = cli("ingest", "--no-such-flag", "--catalog", catalog)
    assert code == 2 and "No such option" in err and "Traceback" not in err
    bad = tmp_path / "bad.toml"
    bad.write_text("[ingest]\nextension = ['.jpg']\n")
    code, _, err = cli("ingest", tmp_path, "--catalog", catalog, "--config", bad)
    assert code == 2 and "unknown key(s) extension" in err


def test_scores_and_sql_outputs(tmp_path: Path, cli, photo_pool: Path):
    from db.scores import write_scores

    catalog = tmp_path / "c.duckdb"
    assert cli("ingest", photo_pool, "--catalog", catalog, "--workers", "1")[0] == 0
    cat = Catalog(catalog)
    ids = [r[0] for r in _rows(cat, "SELECT image_id FROM images ORDER BY 1 LIMIT 3")]
    write_scores(
        cat,
        pa.table(
            {
                "image_id": ids + ids[:1],
                "metric": ["niqe"] * 3 + ["musiq"],
                "value": [3.0, 4.0, 5.0, 70.0],
                "version": ["a"] * 4,
            }
        ),
        run_id=0,
    )
    code, out, _ = cli("scores", "--catalog", catalog)
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 3 and rows[0]["image_id"] == ids[0] and rows[0]["musiq"] == 70.0
    assert rows[0]["path"].endswith(".jpg") and rows[1]["musiq"] is None
    out_csv = tmp_path / "s.csv"
    assert cli("scores", "--format", "csv", "--out", out_csv, "--catalog", catalog)[0] == 0
    assert out_csv.read_text().splitlines()[0] == '"image_id","path","musiq","niqe"'
    code, out, _ = cli("sql", "SELECT count(*) AS n FROM images", "--json", "--catalog", catalog)
    assert json.loads(out) == {"n": 24}
    code, _, err = cli("sql", "DELETE FROM images", "--catalog", catalog)
    assert code == 2 and "read-only" in err.lower()
