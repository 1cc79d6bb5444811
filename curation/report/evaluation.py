"""The report's evaluation section: each test set's Table-1-style table, from the catalog."""

from __future__ import annotations

from typing import Any

from curation.evaluate.table import build_table
from db.catalog import Catalog
from db.evaluation import evaluated_sets, per_image_scores, table_layout


def evaluation_tables(catalog: Catalog) -> list[dict[str, Any]]:
    """One table per evaluated test set (newest first), with each metric's newest scores."""
    tables = []
    for set_id in evaluated_sets(catalog):
        layout = table_layout(catalog, set_id)
        if not layout["metrics"]:
            continue
        table = build_table(per_image_scores(catalog, set_id), layout)
        tables.append({"set_id": set_id, "folder": layout["folder"], **table.as_dict()})
    return tables
