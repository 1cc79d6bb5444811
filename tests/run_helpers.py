"""Helpers of the `hfaid run` tests: a catalog's content without run ids and timestamps."""

from __future__ import annotations

from pathlib import Path

from db.catalog import Catalog


def snapshot(path: Path) -> dict[str, list]:
    """Images, paths, outcomes and scores of a catalog, in a fixed order."""
    with Catalog(path).connect(read_only=True) as con:
        return {
            "images": con.execute("SELECT image_id, bytes, width, height FROM images "
                                  "ORDER BY 1").fetchall(),
            "paths": con.execute("SELECT path, image_id, error FROM paths ORDER BY 1").fetchall(),
            "outcomes": con.execute("SELECT image_id, stage, status, reason, detail "
                                    "FROM stage_outcomes ORDER BY 1, 2").fetchall(),
            "scores": con.execute("SELECT image_id, metric, value, version FROM scores "
                                  "ORDER BY 1, 2, 4").fetchall(),
        }
