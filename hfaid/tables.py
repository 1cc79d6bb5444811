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


def write_arrow_batches(reader: pa.RecordBatchReader, fmt: str, out: Path | None) -> int:
    """Write a stream of record batches as jsonl | csv | parquet, to a file or (jsonl, csv)
    stdout, one batch in memory at a time; returns the rows written."""
    rows = 0
    if fmt == "parquet":
        with pq.ParquetWriter(out, reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch)
                rows += batch.num_rows
        return rows
    handle = open(out, "w", newline="") if out is not None else sys.stdout
    try:
        for index, batch in enumerate(reader):
            if fmt == "csv":
                sink = pa.BufferOutputStream()
                options = pacsv.WriteOptions(include_header=index == 0)
                pacsv.write_csv(pa.Table.from_batches([batch]), sink, options)
                handle.write(sink.getvalue().to_pybytes().decode())
            else:
                handle.writelines(json.dumps(row, default=str) + "\n" for row in batch.to_pylist())
            rows += batch.num_rows
        if fmt == "csv" and rows == 0:  # no batch came: the header alone
            sink = pa.BufferOutputStream()
            pacsv.write_csv(reader.schema.empty_table(), sink)
            handle.write(sink.getvalue().to_pybytes().decode())
    finally:
        if out is not None:
            handle.close()
    return rows
