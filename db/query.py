"""Read-only ad-hoc SQL over the catalog (for `hfaid sql`)."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from db.catalog import Catalog
from db.errors import CatalogError


def run_readonly_query(catalog: Catalog, sql: str) -> pa.Table:
    """Run one statement on a read-only connection; errors come back as one-line messages."""
    with catalog.connect(read_only=True) as con:
        try:
            return con.sql(sql).to_arrow_table()
        except duckdb.Error as exc:
            first = str(exc).strip().splitlines()[0]
            raise CatalogError(f"query failed: {first}") from None
