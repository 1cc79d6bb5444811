"""`hfaid scores` streamed in batches, and one-line user errors for `--device` and `--out`
(issue 26, items 8 and 9)."""

from __future__ import annotations

import csv
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq

from db.catalog import Catalog
from db.scores import latest_scores_wide, write_scores
from tests.conftest import write_photo_pool


def _scored_catalog(cli, catalog: Catalog, tmp_path) -> list[str]:
    """5 ingested images; niqe at two versions (the later one wins), brisque for 3; one image
    whose file then holds other content (its old id keeps scores but has no path)."""
    pool = tmp_path / "pool"
    write_photo_pool(pool, 5, size=(96, 80))
    assert cli("ingest", pool, "--catalog", catalog.path, "--workers", "1")[0] == 0
    with catalog.connect(read_only=True) as con:
        ids = [r[0] for r in con.execute("SELECT image_id FROM images ORDER BY 1").fetchall()]
    write_scores(catalog, pa.table({"image_id": ids, "metric": ["niqe"] * 5,
                                    "value": [1.0, 2.0, 3.0, 4.0, 5.0], "version": ["v1"] * 5}), 1)
    write_scores(catalog, pa.table({"image_id": ids[:2], "metric": ["niqe"] * 2,
                                    "value": [10.0, 20.0], "version": ["v2"] * 2}), 2)
    write_scores(catalog, pa.table({"image_id": ids[:3], "metric": ["brisque"] * 3,
                                    "value": [7.0, 8.0, 9.0], "version": ["v1"] * 3}), 3)
    with catalog.connect(read_only=True) as con:
        path = con.execute("SELECT path FROM paths WHERE image_id = ?", [ids[4]]).fetchone()[0]
    (pool / path.rsplit("/", 1)[1]).write_bytes((pool / "img_00000.jpg").read_bytes()[::-1])
    assert cli("ingest", pool, "--catalog", catalog.path, "--workers", "1")[0] == 0
    return ids


def test_scores_stream_latest_values_of_images_with_a_path_in_any_format(cli, catalog, tmp_path):
    ids = _scored_catalog(cli, catalog, tmp_path)
    expected = [
        {"image_id": ids[0], "brisque": 7.0, "niqe": 10.0},
        {"image_id": ids[1], "brisque": 8.0, "niqe": 20.0},
        {"image_id": ids[2], "brisque": 9.0, "niqe": 3.0},
        {"image_id": ids[3], "brisque": None, "niqe": 4.0},
    ]  # ids[4] lost its path: not exported

    def without_paths(rows: list[dict]) -> list[dict]:
        assert all(r.pop("path").endswith(".jpg") for r in rows)
        return rows

    code, out, err = cli("scores", "--catalog", catalog.path)
    assert code == 0, err
    assert without_paths([json.loads(line) for line in out.splitlines()]) == expected
    code, out, _ = cli("scores", "--format", "csv", "--catalog", catalog.path)
    rows = [{k: (float(v) if v and k != "image_id" and k != "path" else v or None)
             for k, v in r.items()} for r in csv.DictReader(io.StringIO(out))]
    assert without_paths(rows) == expected
    target = tmp_path / "s.parquet"
    assert cli("scores", "--format", "parquet", "--out", target, "--catalog", catalog.path)[0] == 0
    assert without_paths(pq.read_table(target).to_pylist()) == expected

    with latest_scores_wide(catalog, batch_rows=2) as reader:  # in batches of 2 rows
        batches = list(reader)
    assert [b.num_rows for b in batches] == [2, 2]
    assert without_paths(pa.Table.from_batches(batches).to_pylist()) == expected


def test_device_and_out_mistakes_are_one_line_user_errors(cli, catalog, tmp_path):
    """The issue's cases printed "internal error: ..." (exit 1)."""
    _scored_catalog(cli, catalog, tmp_path)
    code, _, err = cli("score", "--metrics", "niqe", "--stage-input", "all", "--device", "tpu",
                       "--catalog", catalog.path)
    assert code == 2 and err.strip() == "error: --device 'tpu': use auto, cpu, cuda or cuda:N"
    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text("x")
    for out in (tmp_path / "missing" / "s.parquet", not_a_folder / "s.parquet",
                "/proc/hfaid-scores.parquet"):
        code, _, err = cli("scores", "--format", "parquet", "--out", out,
                           "--catalog", catalog.path)
        assert code == 2 and err.startswith(f"error: --out {out}: cannot write: "), err
        assert len(err.strip().splitlines()) == 1
    code, _, err = cli("scores", "--format", "csv", "--out", tmp_path, "--catalog", catalog.path)
    assert code == 2 and "is a folder" in err
