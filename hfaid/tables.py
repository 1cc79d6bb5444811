"""Printing and writing Arrow tables as terminal tables, JSON lines, CSV or Parquet."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from rich.table import Table

from hfaid.output import stdout

MAX_PRINTED_ROWS = 200


def print_arrow_table(table: pa.Table) -> None:
    """A rich table of the first rows, with a note when more exist."""
    view = Table(show_lines=False)
    for name in table.column_names:
        view.add_column(name)
    for row in table.slice(0, MAX_PRINTED_ROWS).to_pylist():
        view.add_row(*("" if v is None else _short(v) for v in row.values()))
    stdout.print(view)
    if table.num_rows > MAX_PRINTED_ROWS:
        stdout.print(f"({table.num_rows:,} rows; first {MAX_PRINTED_ROWS} shown; use --json)")


def _short(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def write_arrow_table(table: pa.Table, fmt: str, out: Path | None) -> None:
    """Write as jsonl | csv | parquet to a file, or jsonl/csv to stdout."""
    if fmt == "parquet":
        pq.write_table(table, out)
        return
    if fmt == "csv":
        if out is None:
            sink = pa.BufferOutputStream()
            pacsv.write_csv(table, sink)
            sys.stdout.write(sink.getvalue().to_pybytes().decode())
        else:
            pacsv.write_csv(table, out)
        return
    handle = open(out, "w") if out is not None else sys.stdout
    try:
        for row in table.to_pylist():
            handle.write(json.dumps(row, default=str) + "\n")
    finally:
        if out is not None:
            handle.close()
