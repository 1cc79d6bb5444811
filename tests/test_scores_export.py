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

    code, out, err = cli("sql", "SELECT image_id, niqe, brisque, path IS NULL AS gone "
                         "FROM scores_latest ORDER BY niqe", "--json", "--catalog", catalog.path)
    assert code == 0, err
    assert [json.loads(line) for line in out.splitlines()] == [
        {"image_id": ids[i], "niqe": niqe, "brisque": brisque, "gone": i == 4}
        for i, niqe, brisque in ((2, 3.0, 9.0), (3, 4.0, None), (4, 5.0, None),
                                 (0, 10.0, 7.0), (1, 20.0, 8.0))]

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


def _oracle(catalog: Catalog) -> list[dict]:
    """The export recomputed from the long table in Python: per image with a path, each
    metric's value (NaN is none) from its newest write (created_at, then the greater version)."""
    with catalog.connect(read_only=True) as con:
        rows = con.execute("SELECT image_id, metric, value, version, created_at FROM scores "
                           "WHERE value IS NOT NULL AND NOT isnan(value)").fetchall()
        paths = dict(con.execute("SELECT image_id, path FROM image_paths").fetchall())
    newest: dict[tuple[str, str], tuple] = {}
    for image_id, metric, value, version, created in rows:
        key = (image_id, metric)
        if key not in newest or (created, version) > newest[key][:2]:
            newest[key] = (created, version, value)
    metrics = sorted({m for _, m in newest})
    return sorted(
        ({"image_id": i, "path": paths[i],
          **{m: newest[(i, m)][2] if (i, m) in newest else None for m in metrics}}
         for i in {i for i, _ in newest} if i in paths),
        key=lambda r: r["image_id"])


def _exported(cli, catalog: Catalog, target) -> list[dict]:
    code, _, err = cli("scores", "--format", "parquet", "--out", target, "--catalog", catalog.path)
    assert code == 0, err
    return sorted(pq.read_table(target).to_pylist(), key=lambda r: r["image_id"])


def test_the_latest_table_follows_every_kind_of_score_write(cli, catalog, tmp_path):
    """clean's measurements, a scoring job's merge and write_scores each keep the wide table
    equal to the long one: a second version overwrites, a re-sent older version does not, a
    new metric (with a name that is no safe column) joins mid-way."""
    pool = tmp_path / "pool"
    write_photo_pool(pool, 4, size=(160, 120))
    assert cli("ingest", pool, "--catalog", catalog.path, "--workers", "1")[0] == 0
    config = tmp_path / "c.toml"
    config.write_text("[clean]\nmin_short_side = 1\nlaplacian_min = 0\nlaplacian_max = 1e9\n"
                      "min_entropy = 0\n")
    assert cli("clean", "--workers", "1", "--config", config, "--catalog", catalog.path)[0] == 0
    assert _exported(cli, catalog, tmp_path / "a.parquet") == _oracle(catalog)
    code, _, err = cli("score", "--metrics", "brisque", "--stage-input", "clean", "--device",
                       "cpu", "--catalog", catalog.path)
    assert code == 0, err
    after_job = _exported(cli, catalog, tmp_path / "b.parquet")
    assert after_job == _oracle(catalog) and all(r["brisque"] is not None for r in after_job)

    ids = [r["image_id"] for r in after_job]
    awkward = 'Q"Align \'aesthetic\''
    write_scores(catalog, pa.table({"image_id": ids[:2], "metric": ["brisque", awkward],
                                    "value": [99.0, 4.5], "version": ["v9", "v1"]}), 7)
    write_scores(catalog, pa.table({"image_id": [ids[0], ids[0]], "metric": ["niqe", "niqe"],
                                    "value": [1.0, 2.0], "version": ["a", "b"]}), 8)
    write_scores(catalog, pa.table({"image_id": ids[1:2], "metric": ["brisque"],
                                    "value": [float("nan")], "version": ["v10"]}), 9)
    exported = _exported(cli, catalog, tmp_path / "c.parquet")
    assert exported == _oracle(catalog)
    assert exported[1]["brisque"] == after_job[1]["brisque"]  # NaN is no value
    assert exported[0]["brisque"] == 99.0
    assert exported[1][awkward] == 4.5
    assert exported[0]["niqe"] == 2.0  # two versions at once: the greater
    # The first version sent again: a duplicate, skipped, and the newer value stays.
    job_value = after_job[0]["brisque"]
    with catalog.connect(read_only=True) as con:
        (first_version,), = con.execute(
            "SELECT version FROM scores WHERE metric = 'brisque' AND image_id = ? "
            "AND value = ?", [ids[0], job_value]).fetchall()
    assert write_scores(catalog, pa.table({"image_id": [ids[0]], "metric": ["brisque"],
                                           "value": [job_value], "version": [first_version]}),
                        9) == 0
    assert _exported(cli, catalog, tmp_path / "d.parquet") == exported


def test_upgrading_a_catalog_fills_the_latest_table_from_its_scores(cli, tmp_path):
    """A catalog from before the wide table: `hfaid init` computes it from the long rows."""
    from db.migrate import migrate

    catalog = Catalog(tmp_path / "old.duckdb")
    migrate(catalog, upto=12)
    with catalog.connect() as con:
        for i in range(3):
            con.execute("INSERT INTO images (image_id, bytes, format, width, height) "
                        f"VALUES ('id{i}', 10, 'JPEG', 4, 3)")
            con.execute(f"INSERT INTO paths (path, image_id, source) VALUES "
                        f"('/x/{i}.jpg', 'id{i}', '/x')")
        con.execute("INSERT INTO scores (image_id, metric, value, version, created_at) VALUES "
                    "('id0', 'niqe', 3.5, 'v1', '2026-01-01'), "
                    "('id0', 'niqe', 4.5, 'v0', '2026-02-01'), "
                    "('id1', 'maniqa', 0.5, 'v1', '2026-01-01'), "
                    "('id9', 'maniqa', 0.7, 'v1', '2026-01-01')")  # no path: not exported
    assert cli("init", "--catalog", catalog.path)[0] == 0
    assert _exported(cli, catalog, tmp_path / "s.parquet") == [
        {"image_id": "id0", "path": "/x/0.jpg", "maniqa": None, "niqe": 4.5},
        {"image_id": "id1", "path": "/x/1.jpg", "maniqa": 0.5, "niqe": None},
    ]


def test_the_exported_path_follows_ingest(cli, catalog, tmp_path):
    """The wide table carries each image's path: a copy under a smaller name takes over, a
    file rewritten with other content drops its old image from the export, and the content
    coming back under another name brings it back."""
    pool = tmp_path / "pool"
    write_photo_pool(pool, 3, size=(96, 80))
    assert cli("ingest", pool, "--catalog", catalog.path, "--workers", "1")[0] == 0
    with catalog.connect(read_only=True) as con:
        ids = dict(con.execute("SELECT regexp_extract(path, '[^/]+$'), image_id FROM paths")
                   .fetchall())
    write_scores(catalog, pa.table({"image_id": list(ids.values()), "metric": ["niqe"] * 3,
                                    "value": [1.0, 2.0, 3.0], "version": ["v1"] * 3}), 1)

    def paths() -> dict[str, str]:
        return {r["image_id"]: r["path"].rsplit("/", 1)[1]
                for r in _exported(cli, catalog, tmp_path / "s.parquet")}

    assert paths() == {i: name for name, i in ids.items()}
    original = (pool / "img_00001.jpg").read_bytes()
    (pool / "a_copy.jpg").write_bytes(original)  # sorts before img_00001.jpg
    (pool / "img_00002.jpg").write_bytes(original[::-1])  # other content: no longer an image
    assert cli("ingest", pool, "--catalog", catalog.path, "--workers", "1")[0] == 0
    assert paths() == {ids["img_00000.jpg"]: "img_00000.jpg", ids["img_00001.jpg"]: "a_copy.jpg"}
    assert paths() == {r["image_id"]: r["path"].rsplit("/", 1)[1] for r in _oracle(catalog)}

    write_photo_pool(tmp_path / "again", 3, size=(96, 80))  # the same three pictures
    (pool / "z_back.jpg").write_bytes((tmp_path / "again" / "img_00002.jpg").read_bytes())
    assert cli("ingest", pool, "--catalog", catalog.path, "--workers", "1")[0] == 0
    assert paths()[ids["img_00002.jpg"]] == "z_back.jpg"


def test_datasheet_means_review_scores_and_selection_read_the_latest_values(catalog):
    """The other readers of "latest value per metric": the export datasheet's means, the
    review page's scores and selection's input see the newest value, NaN as none."""
    from db.exports import score_means
    from db.migrate import migrate
    from db.review import image_scores
    from db.selection import metric_names, metric_values

    migrate(catalog)
    ids = [f"{i:064x}" for i in range(4)]
    write_scores(catalog, pa.table({"image_id": ids, "metric": ["niqe"] * 4,
                                    "value": [1.0, 2.0, 3.0, 4.0], "version": ["v1"] * 4}), 1)
    write_scores(catalog, pa.table({"image_id": ids[:2] + ids[2:3], "metric": ["niqe"] * 3,
                                    "value": [10.0, float("nan"), 30.0], "version": ["v2"] * 3}), 2)
    write_scores(catalog, pa.table({"image_id": ids[3:], "metric": ["maniqa"],
                                    "value": [0.5], "version": ["v1"]}), 3)
    # niqe latest: 10, 2 (NaN is none), 30, 4; maniqa only for ids[3].
    assert score_means(catalog, ids[:2]) == [
        {"metric": "maniqa", "export_mean": None, "export_n": 0, "pool_mean": 0.5, "pool_n": 1},
        {"metric": "niqe", "export_mean": 6.0, "export_n": 2, "pool_mean": 11.5, "pool_n": 4}]
    assert image_scores(catalog, ids[3]) == {"maniqa": 0.5, "niqe": 4.0}
    assert image_scores(catalog, ids[1]) == {"niqe": 2.0}
    assert image_scores(catalog, "unknown") == {}
    assert metric_names(catalog) == ["maniqa", "niqe"]
    assert sorted(metric_values(catalog, "niqe")) == [2.0, 4.0, 10.0, 30.0]
