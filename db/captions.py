"""Captions: merging caption result files idempotently, pending work, latest and source captions."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from db.catalog import Catalog
from db.images import passing_join

# Columns a caption result file carries (one row per image the worker saw).
RESULT_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()), ("model", pa.string()), ("version", pa.string()),
        ("caption", pa.string()), ("flags", pa.list_(pa.string())), ("n_tokens", pa.int32()),
        ("settings", pa.string()), ("status", pa.string()), ("reason", pa.string()),
        ("detail", pa.string()),
    ]
)

# Ranks a generated caption: an unflagged caption beats a flagged one, then the newest wins,
# so a re-caption that is still flagged never hides an earlier clean one.
_LATEST = """
    SELECT image_id,
           arg_max(caption, (len(flags) = 0, created_at)) AS caption,
           arg_max(model, (len(flags) = 0, created_at)) AS model,
           arg_max(version, (len(flags) = 0, created_at)) AS version,
           arg_max(flags, (len(flags) = 0, created_at)) AS flags
    FROM captions GROUP BY image_id
"""


def merge_caption_files(catalog: Catalog, result_files: list[Path], run_id: int) -> int:
    """Insert new (image, version) captions and replace the images' "caption" outcomes."""
    if not result_files:
        return 0
    with catalog.transaction() as con:
        con.execute(
            "CREATE TEMP TABLE batch AS SELECT DISTINCT ON (image_id, version) * "
            "FROM read_parquet(?) ORDER BY image_id, version",
            [[str(f) for f in result_files]],
        )
        added = con.execute(
            "INSERT INTO captions (image_id, model, version, caption, flags, n_tokens, settings, "
            "run_id) SELECT b.image_id, b.model, b.version, b.caption, b.flags, b.n_tokens, "
            "b.settings::JSON, ? FROM batch b WHERE b.caption IS NOT NULL AND NOT EXISTS "
            "(SELECT 1 FROM captions c WHERE c.image_id = b.image_id AND c.version = b.version)",
            [run_id],
        ).fetchone()[0]
        # The outcome follows the caption export will use (best-ranked), not just this batch.
        con.execute(
            f"CREATE TEMP TABLE decided AS SELECT b.image_id, "
            f"CASE WHEN l.image_id IS NULL THEN b.status "
            f"WHEN len(l.flags) = 0 THEN 'pass' ELSE 'reject' END AS status, "
            f"CASE WHEN l.image_id IS NULL THEN b.reason "
            f"WHEN len(l.flags) = 0 THEN NULL ELSE 'caption_' || l.flags[1] END AS reason, "
            f"CASE WHEN l.image_id IS NULL THEN b.detail "
            f"ELSE l.version || coalesce(': ' || nullif(array_to_string(l.flags, ','), ''), '') "
            f"END AS detail "
            f"FROM (SELECT DISTINCT ON (image_id) * FROM batch ORDER BY image_id) b "
            f"LEFT JOIN ({_LATEST}) l USING (image_id)"
        )
        con.execute(
            "DELETE FROM stage_outcomes o USING decided d "
            "WHERE o.image_id = d.image_id AND o.stage = 'caption'"
        )
        con.execute(
            "INSERT INTO stage_outcomes (image_id, stage, status, reason, detail, run_id) "
            "SELECT image_id, 'caption', status, reason, detail, ? FROM decided",
            [run_id],
        )
        con.execute("DROP TABLE decided")
        con.execute("DROP TABLE batch")
    return added


def images_to_caption(catalog: Catalog, stage: str | None, version: str) -> pa.Table:
    """image_id, path, width, height of images passing `stage` without a caption at `version`."""
    sql = (
        "SELECT i.image_id, ip.path, i.width, i.height "
        "FROM images i JOIN image_paths ip USING (image_id) "
    )
    join, params = passing_join(stage)
    sql += join
    sql += (
        "WHERE NOT EXISTS (SELECT 1 FROM captions c WHERE c.image_id = i.image_id "
        "AND c.version = ?) ORDER BY i.image_id"
    )
    params.append(version)
    with catalog.connect(read_only=True) as con:
        return con.sql(sql, params=params).to_arrow_table()


def flagged_to_recaption(catalog: Catalog, version: str) -> pa.Table:
    """Images whose best caption is flagged and that have no caption at `version` yet."""
    with catalog.connect(read_only=True) as con:
        return con.sql(
            f"SELECT l.image_id, ip.path, i.width, i.height FROM ({_LATEST}) l "
            "JOIN images i USING (image_id) JOIN image_paths ip USING (image_id) "
            "WHERE len(l.flags) > 0 AND NOT EXISTS (SELECT 1 FROM captions c "
            "WHERE c.image_id = l.image_id AND c.version = ?) ORDER BY l.image_id",
            params=[version],
        ).to_arrow_table()


def latest_captions(catalog: Catalog) -> pa.Table:
    """image_id, caption, model, version, flags: the best generated caption per image."""
    with catalog.connect(read_only=True) as con:
        return con.sql(
            f"SELECT image_id, caption, model, version, flags FROM ({_LATEST}) ORDER BY image_id"
        ).to_arrow_table()


def caption_listing(catalog: Catalog, flagged_only: bool = False) -> pa.Table:
    """image_id, path, caption, model, flags for `hfaid captions` (flagged ones only if asked)."""
    where = "WHERE len(l.flags) > 0 " if flagged_only else ""
    with catalog.connect(read_only=True) as con:
        return con.sql(
            f"SELECT l.image_id, ip.path, l.caption, l.model, l.flags FROM ({_LATEST}) l "
            f"LEFT JOIN image_paths ip USING (image_id) {where}ORDER BY l.image_id"
        ).to_arrow_table()


def caption_counts(catalog: Catalog) -> dict[str, int]:
    """Images with a caption, with a flagged best caption, and with a source caption."""
    with catalog.connect(read_only=True) as con:
        captioned, flagged = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE len(flags) > 0) FROM ({_LATEST})"
        ).fetchone()
        sourced = con.execute("SELECT count(DISTINCT image_id) FROM source_captions").fetchone()[0]
    return {"captioned": captioned, "flagged": flagged, "with_source_caption": sourced}


def image_paths(catalog: Catalog) -> pa.Table:
    """Every readable path with its image_id (sidecar captions sit next to any of them)."""
    with catalog.connect(read_only=True) as con:
        return con.sql(
            "SELECT path, image_id FROM paths WHERE image_id IS NOT NULL ORDER BY path"
        ).to_arrow_table()


def write_source_captions(catalog: Catalog, rows: pa.Table, run_id: int) -> int:
    """Replace source captions per (image_id, source) from a table (image_id, source, caption)."""
    with catalog.transaction() as con:
        con.register("incoming", rows)
        con.execute(
            "CREATE TEMP TABLE batch AS SELECT DISTINCT ON (image_id, source) image_id, source, "
            "caption FROM incoming i WHERE EXISTS (SELECT 1 FROM images m "
            "WHERE m.image_id = i.image_id) ORDER BY image_id, source"
        )
        con.unregister("incoming")
        con.execute(
            "DELETE FROM source_captions s USING batch b "
            "WHERE s.image_id = b.image_id AND s.source = b.source"
        )
        con.execute(
            "INSERT INTO source_captions (image_id, source, caption, run_id) "
            "SELECT image_id, source, caption, ? FROM batch",
            [run_id],
        )
        count = con.execute("SELECT count(*) FROM batch").fetchone()[0]
        con.execute("DROP TABLE batch")
    return count


def source_captions(catalog: Catalog) -> pa.Table:
    """image_id, caption, source: captions that came with the images (newest per source)."""
    with catalog.connect(read_only=True) as con:
        return con.sql(
            "SELECT image_id, caption, source FROM source_captions ORDER BY image_id, source"
        ).to_arrow_table()
