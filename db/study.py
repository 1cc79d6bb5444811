"""Metric studies: best/worst-N images per metric, shuffled for blind votes, and the results."""

from __future__ import annotations

import random
from typing import Any

import pyarrow as pa

from db.catalog import Catalog
from db.errors import CatalogError
from db.selection import _load_input


class StudyError(CatalogError):
    """A study request that cannot be met (unknown study, image not in it, no scores)."""


def create_study(
    catalog: Catalog,
    name: str,
    metrics: dict[str, bool],
    n: int,
    input_stage: str | None,
    seed: int,
    run_id: int | None = None,
) -> dict[str, Any]:
    """Pick the best and worst n per metric ({metric: lower_better}); store items shuffled."""
    names = list(metrics)
    with catalog.transaction() as con:
        _load_input(con, input_stage, names)
        members: list[dict[str, Any]] = []
        for i, (metric, lower_better) in enumerate(metrics.items()):
            col = f"m{i}"
            have = con.execute(f"SELECT count({col}) FROM sel").fetchone()[0]
            if have == 0:
                raise StudyError(f"no image in the study's input has a {metric} score")
            for side, ascending in (("best", lower_better), ("worst", not lower_better)):
                order = "ASC" if ascending else "DESC"
                rows = con.execute(
                    f"SELECT image_id, {col} FROM sel WHERE {col} IS NOT NULL "
                    f"ORDER BY {col} {order}, image_id LIMIT ?",
                    [n],
                ).fetchall()
                members += [
                    {"metric": metric, "side": side, "rank": r + 1, "image_id": img, "value": value}
                    for r, (img, value) in enumerate(rows)
                ]
        con.execute("DROP TABLE sel")
        study_id = con.execute(
            "INSERT INTO studies (name, metrics, n, input_stage, seed, run_id) "
            "VALUES (?, ?, ?, ?, ?, ?) RETURNING study_id",
            [name, names, n, input_stage, seed, run_id],
        ).fetchone()[0]
        # Each image is shown once even when several lists hold it; order hides the lists.
        images = sorted({m["image_id"] for m in members})
        random.Random(seed).shuffle(images)
        items = pa.table(
            {
                "study_id": [study_id] * len(images),
                "position": list(range(1, len(images) + 1)),
                "image_id": images,
            }
        )
        member_table = pa.Table.from_pylist(members)
        con.register("items_in", items)
        con.register("members_in", member_table)
        con.execute("INSERT INTO study_items SELECT study_id, position, image_id FROM items_in")
        con.execute(
            "INSERT INTO study_members "
            "SELECT ?, image_id, metric, side, rank, value FROM members_in",
            [study_id],
        )
        con.unregister("items_in")
        con.unregister("members_in")
    return {"study_id": study_id, "items": len(images), "members": len(members)}


def list_studies(catalog: Catalog) -> list[dict[str, Any]]:
    """Every study with its size and vote count, newest first."""
    with catalog.connect(read_only=True) as con:
        cur = con.execute(
            """
            SELECT s.study_id, s.name, s.metrics, s.n, s.input_stage, s.created_at,
                   (SELECT count(*) FROM study_items i WHERE i.study_id = s.study_id) AS items,
                   (SELECT count(*) FROM study_votes v WHERE v.study_id = s.study_id) AS votes,
                   (SELECT count(DISTINCT reviewer) FROM study_votes v
                    WHERE v.study_id = s.study_id) AS reviewers
            FROM studies s ORDER BY s.study_id DESC
            """
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def latest_study_id(catalog: Catalog) -> int | None:
    with catalog.connect(read_only=True) as con:
        return con.execute("SELECT max(study_id) FROM studies").fetchone()[0]


def _require_study(con, study_id: int) -> None:
    if not con.execute("SELECT count(*) FROM studies WHERE study_id = ?", [study_id]).fetchone()[0]:
        raise StudyError(f"no study {study_id} (`hfaid study list` shows the studies)")


def next_study_item(catalog: Catalog, study_id: int, reviewer: str) -> dict[str, Any] | None:
    """The first item this reviewer has not voted on (image_id, path, position, done, total)."""
    with catalog.connect(read_only=True) as con:
        _require_study(con, study_id)
        total, done = con.execute(
            "SELECT count(*), count(v.image_id) FROM study_items i LEFT JOIN study_votes v "
            "ON v.study_id = i.study_id AND v.image_id = i.image_id AND v.reviewer = ? "
            "WHERE i.study_id = ?",
            [reviewer, study_id],
        ).fetchone()
        row = con.execute(
            """
            SELECT i.image_id, ip.path, i.position FROM study_items i
            LEFT JOIN image_paths ip ON ip.image_id = i.image_id
            WHERE i.study_id = ? AND NOT EXISTS (SELECT 1 FROM study_votes v
                WHERE v.study_id = i.study_id AND v.image_id = i.image_id AND v.reviewer = ?)
            ORDER BY i.position LIMIT 1
            """,
            [study_id, reviewer],
        ).fetchone()
    if row is None:
        return None
    return {
        "study_id": study_id,
        "image_id": row[0],
        "path": row[1],
        "position": row[2],
        "done": done,
        "total": total,
    }


def record_study_vote(
    catalog: Catalog, study_id: int, image_id: str, reviewer: str, accept: bool
) -> None:
    """Store (or replace) one reviewer's verdict on one study image."""
    if not reviewer:
        raise StudyError("a study vote needs a reviewer name")
    with catalog.transaction() as con:
        _require_study(con, study_id)
        if not con.execute(
            "SELECT count(*) FROM study_items WHERE study_id = ? AND image_id = ?",
            [study_id, image_id],
        ).fetchone()[0]:
            raise StudyError(f"image {image_id[:12]} is not in study {study_id}")
        con.execute(
            "INSERT OR REPLACE INTO study_votes (study_id, image_id, reviewer, accept, cast_at) "
            "VALUES (?, ?, ?, ?, now())",
            [study_id, image_id, reviewer, bool(accept)],
        )


def study_results(catalog: Catalog, study_id: int) -> list[dict[str, Any]]:
    """Per metric: accept rates on its best and worst lists and how often reviewers agree.

    agreement = (accepts on the best list + rejects on the worst list) / votes on both lists;
    1.0 means reviewers always side with the metric, 0.5 is chance.
    """
    with catalog.connect(read_only=True) as con:
        _require_study(con, study_id)
        cur = con.execute(
            """
            SELECT m.metric,
                   count(*) FILTER (WHERE m.side = 'best') AS best_votes,
                   count(*) FILTER (WHERE m.side = 'best' AND v.accept) AS best_accepts,
                   count(*) FILTER (WHERE m.side = 'worst') AS worst_votes,
                   count(*) FILTER (WHERE m.side = 'worst' AND v.accept) AS worst_accepts,
                   count(DISTINCT v.reviewer) AS reviewers
            FROM study_members m JOIN study_votes v
              ON v.study_id = m.study_id AND v.image_id = m.image_id
            WHERE m.study_id = ? GROUP BY m.metric
            """,
            [study_id],
        )
        names = [d[0] for d in cur.description]
        voted = {row[0]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}
        metrics = con.execute(
            "SELECT metrics FROM studies WHERE study_id = ?", [study_id]
        ).fetchone()[0]
    results = []
    for metric in metrics:
        r = voted.get(
            metric,
            {
                "metric": metric,
                "best_votes": 0,
                "best_accepts": 0,
                "worst_votes": 0,
                "worst_accepts": 0,
                "reviewers": 0,
            },
        )
        both = r["best_votes"] + r["worst_votes"]
        agree = r["best_accepts"] + (r["worst_votes"] - r["worst_accepts"])
        r["best_accept_rate"] = r["best_accepts"] / r["best_votes"] if r["best_votes"] else None
        r["worst_accept_rate"] = r["worst_accepts"] / r["worst_votes"] if r["worst_votes"] else None
        r["agreement"] = agree / both if both else None
        results.append(r)
    results.sort(key=lambda r: -1 if r["agreement"] is None else -r["agreement"])
    return results
