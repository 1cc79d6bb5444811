"""Stage-1 tables: clean measurements (decodes, scores, pHashes), embeddings, duplicate groups."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from db.scores import insert_scores
from db.stages import live_only

if TYPE_CHECKING:  # clean's workers import CLEAN_RESULT_SCHEMA and never load duckdb
    from db.catalog import Catalog

CLEAN_RESULT_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("notes", pa.string()),
        ("phash", pa.uint64()),
        ("laplacian_var", pa.float64()),
        ("detail_ratio", pa.float64()),
        ("brightness", pa.float64()),
        ("luma_p99", pa.float64()),
        ("luma_p05", pa.float64()),
        ("entropy", pa.float64()),
        ("gray_delta", pa.float64()),
        ("short_side", pa.float64()),
        ("aspect_ratio", pa.float64()),
        ("gray_mode", pa.float64()),
        ("transparent_fraction", pa.float64()),
        ("n_frames", pa.float64()),
        ("noise_sigma", pa.float64()),
        ("blockiness", pa.float64()),
    ]
)
_METRIC_COLUMNS = tuple(
    n
    for n in CLEAN_RESULT_SCHEMA.names
    if n not in ("image_id", "status", "reason", "detail", "notes", "phash")
)


def images_to_measure(catalog: Catalog, version: str) -> pa.Table:
    """image_id, path of ingested images without a decode verdict at this measurement version."""
    with catalog.connect(read_only=True) as con:
        return con.sql(
            "SELECT i.image_id, ip.path FROM images i JOIN image_paths ip USING (image_id) "
            "WHERE NOT EXISTS (SELECT 1 FROM clean_decodes d WHERE d.image_id = i.image_id "
            "AND d.version = ?) ORDER BY i.image_id",
            params=[version],
        ).to_arrow_table()


def merge_clean_results(
    catalog: Catalog,
    result_files: list[Path],
    run_id: int,
    version: str,
    metric_versions: dict[str, str],
    phash_version: str,
) -> int:
    """Clean result files -> clean_decodes (replace), scores (skip present), phashes (replace).

    `version` is the decode verdict's; each measure's score row carries its own version from
    `metric_versions` (the measurement version unless the measure has one of its own).
    """
    if not result_files:
        return 0
    unpivot = " UNION ALL ".join(
        f"SELECT image_id, '{m}' AS metric, {m} AS value, "
        f"'{metric_versions.get(m, version)}' AS version FROM batch WHERE {m} IS NOT NULL"
        for m in _METRIC_COLUMNS
    )
    with catalog.transaction() as con:
        con.execute(
            "CREATE TEMP TABLE batch AS SELECT DISTINCT ON (image_id) * FROM read_parquet(?) "
            "ORDER BY image_id",
            [[str(f) for f in result_files]],
        )
        con.execute("DELETE FROM clean_decodes WHERE image_id IN (SELECT image_id FROM batch)")
        con.execute(
            "INSERT INTO clean_decodes (image_id, version, status, reason, detail, notes, run_id) "
            "SELECT image_id, ?, status, reason, detail, notes, ? FROM batch",
            [version, run_id],
        )
        insert_scores(con, unpivot, run_id)
        con.execute("DELETE FROM phashes WHERE image_id IN (SELECT image_id FROM batch)")
        con.execute(
            "INSERT INTO phashes (image_id, phash, version, run_id) "
            "SELECT image_id, phash, ?, ? FROM batch WHERE phash IS NOT NULL",
            [phash_version, run_id],
        )
        merged = con.execute("SELECT count(*) FROM batch").fetchone()[0]
        con.execute("DROP TABLE batch")
    return merged


def clean_measurements(catalog: Catalog, version: str, metrics: dict[str, str]) -> pa.Table:
    """Per measured image: decode verdict, notes and one column per stage-1 metric, each
    metric read at its version in `metrics` (metric -> score version)."""
    columns = ", ".join(
        f"max(s.value) FILTER (WHERE s.metric = '{m}' AND s.version = '{v}') AS {m}"
        for m, v in metrics.items()
    )
    names = ", ".join(f"'{m}'" for m in metrics)
    with catalog.connect(read_only=True) as con:
        return con.sql(
            f"SELECT d.image_id, d.status, d.reason, d.detail, d.notes, {columns} "
            f"FROM clean_decodes d LEFT JOIN scores s ON s.image_id = d.image_id "
            f"AND s.metric IN ({names}) "
            f"WHERE d.version = ? AND d.image_id IN (SELECT image_id FROM images) "
            f"{live_only(con, 'd.image_id')}"
            f"GROUP BY ALL ORDER BY d.image_id",
            params=[version],
        ).to_arrow_table()


def dedup_candidates(catalog: Catalog, version: str, phash_version: str) -> pa.Table:
    """image_id, phash, pixels, laplacian_var of clean-passed images with a pHash."""
    with catalog.connect(read_only=True) as con:
        return con.sql(
            "SELECT o.image_id, h.phash, "
            "CAST(i.width AS BIGINT) * CAST(i.height AS BIGINT) AS pixels, "
            "coalesce(s.value, 0.0) AS laplacian_var "
            "FROM stage_outcomes o JOIN images i USING (image_id) "
            "JOIN phashes h ON h.image_id = o.image_id AND h.version = ? "
            "LEFT JOIN scores s ON s.image_id = o.image_id AND s.metric = 'laplacian_var' "
            "AND s.version = ? "
            f"WHERE o.stage = 'clean' AND o.status = 'pass' {live_only(con, 'o.image_id')}"
            "ORDER BY o.image_id",
            params=[phash_version, version],
        ).to_arrow_table()


_CLEAN_PASSED = (
    "SELECT o.image_id FROM stage_outcomes o WHERE o.stage = 'clean' AND o.status = 'pass'"
)


def images_to_embed(catalog: Catalog, model: str, version: str) -> pa.Table:
    """image_id, path of clean-passed images without an embedding from (model, version)."""
    with catalog.connect(read_only=True) as con:
        return con.sql(
            f"SELECT ip.image_id, ip.path FROM image_paths ip "
            f"WHERE ip.image_id IN ({_CLEAN_PASSED}) AND NOT EXISTS (SELECT 1 FROM embeddings e "
            f"WHERE e.image_id = ip.image_id AND e.model = ? AND e.version = ?) "
            f"ORDER BY ip.image_id",
            params=[model, version],
        ).to_arrow_table()


def merge_embeddings(
    catalog: Catalog, result_files: list[Path], run_id: int, model: str, version: str
) -> int:
    """Embedding result files -> embeddings (replace per image); rows with an error are
    counted but stored nowhere: the image is embedded again next run."""
    if not result_files:
        return 0
    with catalog.transaction() as con:
        con.execute(
            "CREATE TEMP TABLE batch AS SELECT DISTINCT ON (image_id) * FROM read_parquet(?) "
            "ORDER BY image_id",
            [[str(f) for f in result_files]],
        )
        con.execute(
            "DELETE FROM embeddings WHERE model = ? AND version = ? "
            "AND image_id IN (SELECT image_id FROM batch WHERE vector IS NOT NULL)",
            [model, version],
        )
        con.execute(
            "INSERT INTO embeddings (image_id, model, version, vector, run_id) "
            "SELECT image_id, ?, ?, vector, ? FROM batch WHERE vector IS NOT NULL",
            [model, version, run_id],
        )
        merged = con.execute("SELECT count(*) FROM batch").fetchone()[0]
        con.execute("DROP TABLE batch")
    return merged


def embedding_candidates(
    catalog: Catalog, model: str, version: str, measure_version: str
) -> pa.Table:
    """image_id, vector, pixels, laplacian_var of clean-passed images; vector NULL when the
    image could not be embedded."""
    with catalog.connect(read_only=True) as con:
        return con.sql(
            "SELECT o.image_id, e.vector, "
            "CAST(i.width AS BIGINT) * CAST(i.height AS BIGINT) AS pixels, "
            "coalesce(s.value, 0.0) AS laplacian_var "
            "FROM stage_outcomes o JOIN images i USING (image_id) "
            "LEFT JOIN embeddings e ON e.image_id = o.image_id AND e.model = ? AND e.version = ? "
            "LEFT JOIN scores s ON s.image_id = o.image_id AND s.metric = 'laplacian_var' "
            "AND s.version = ? "
            "WHERE o.stage = 'clean' AND o.status = 'pass' ORDER BY o.image_id",
            params=[model, version, measure_version],
        ).to_arrow_table()


def clean_passed_without_hash(catalog: Catalog, phash_version: str) -> int:
    """How many clean-passed images lack a pHash (they must be measured by `hfaid clean`)."""
    with catalog.connect(read_only=True) as con:
        return con.execute(
            "SELECT count(*) FROM stage_outcomes o WHERE o.stage = 'clean' AND o.status = 'pass' "
            "AND NOT EXISTS (SELECT 1 FROM phashes h WHERE h.image_id = o.image_id "
            "AND h.version = ?)",
            [phash_version],
        ).fetchone()[0]


def replace_dedup(catalog: Catalog, groups: pa.Table, outcomes: pa.Table, run_id: int) -> int:
    """Replace the near-duplicate groups and every dedup outcome in one transaction.

    Dedup is recomputed over all clean-passed images each run, so outcomes of images no longer
    passing clean are dropped (they would otherwise still count as passing dedup).
    """
    with catalog.transaction() as con:
        con.register("incoming_groups", groups)
        con.register("incoming_outcomes", outcomes)
        con.execute("DELETE FROM near_duplicates")
        con.execute(
            "INSERT INTO near_duplicates (image_id, representative, group_size, distance, "
            "max_distance, method, similarity, run_id) SELECT image_id, representative, "
            "group_size, distance, max_distance, method, similarity, ? FROM incoming_groups",
            [run_id],
        )
        con.execute("DELETE FROM stage_outcomes WHERE stage = 'dedup'")
        con.execute(
            "INSERT INTO stage_outcomes (image_id, stage, status, reason, detail, run_id) "
            "SELECT image_id, 'dedup', status, reason, detail, ? FROM incoming_outcomes",
            [run_id],
        )
        written = con.execute("SELECT count(*) FROM incoming_outcomes").fetchall()[0][0]
        con.unregister("incoming_groups")
        con.unregister("incoming_outcomes")
    return written
