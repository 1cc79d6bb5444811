"""Expand ingest sources (directories, text files of paths, Parquet/CSV tables) into file paths."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from hfaid_core.errors import HfaidError

LIST_SUFFIXES = {".txt", ".lst", ".list"}
TABLE_SUFFIXES = {".parquet", ".pq", ".csv"}


@dataclass(frozen=True)
class Candidate:
    """A path to ingest; `error` is set when the name itself is already a problem."""

    path: str
    source: str
    error: str | None = None
    error_detail: str | None = None


def expand_sources(
    sources: list[Path],
    extensions: list[str],
    path_column: str,
    skipped: Counter[str] | None = None,
) -> Iterator[Candidate]:
    """Yield candidates from every source; a missing source is a clear error before any work.
    Files in folders whose extension is not in `extensions` are counted in `skipped` by
    extension (lower case, "" for none), so nothing is passed over without a number."""
    wanted = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    skipped = Counter() if skipped is None else skipped
    for source in sources:
        if not os.path.lexists(source):
            raise HfaidError(f"source {source} does not exist")
    for source in sources:
        label = str(source)
        if source.is_dir():
            yield from _walk(source, wanted, label, skipped)
        elif source.suffix.lower() in LIST_SUFFIXES:
            yield from _listed(_read_list(source), source.parent, label)
        elif source.suffix.lower() in TABLE_SUFFIXES:
            yield from _listed(_read_table_column(source, path_column), source.parent, label)
        else:
            yield _candidate(os.path.abspath(source), label)


def _walk(root: Path, wanted: set[str], label: str, skipped: Counter[str]) -> Iterator[Candidate]:
    def on_error(exc: OSError) -> None:
        raise HfaidError(f"cannot list {exc.filename}: {exc.strerror}")

    for dirpath, dirnames, filenames in os.walk(root, onerror=on_error):
        dirnames.sort()
        for name in dirnames:
            if os.path.splitext(name)[1].lower() in wanted:
                # A folder named like an image is recorded, so nothing disappears silently.
                yield Candidate(
                    _printable(os.path.join(os.path.abspath(dirpath), name)),
                    label,
                    "not_a_file",
                    "a directory with an image file name",
                )
        for name in sorted(filenames):
            extension = os.path.splitext(name)[1].lower()
            if extension in wanted:
                yield _candidate(os.path.join(os.path.abspath(dirpath), name), label)
            else:
                skipped[extension] += 1


def _read_list(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        raise HfaidError(f"cannot read path list {path}: {exc.strerror}") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _read_table_column(path: Path, column: str) -> list[str]:
    try:
        if path.suffix.lower() == ".csv":
            table = pacsv.read_csv(path)
        else:
            table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise HfaidError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
    if column not in table.column_names:
        raise HfaidError(
            f"{path} has no column {column!r} (columns: {', '.join(table.column_names)}; "
            "set [ingest] path_column)"
        )
    return [str(v) for v in table.column(column).to_pylist() if v]


def _listed(paths: list[str], base: Path, label: str) -> Iterator[Candidate]:
    for raw in paths:
        yield _candidate(os.path.abspath(os.path.join(base, raw)), label)


def _candidate(path: str, label: str) -> Candidate:
    printable = _printable(path)
    if printable != path:
        return Candidate(
            printable,
            label,
            "non_utf8_filename",
            "file name is not valid UTF-8; rename the file to ingest it",
        )
    return Candidate(path, label)


def _printable(path: str) -> str:
    """The path as valid UTF-8: undecodable bytes become \\xNN escapes."""
    return os.fsencode(path).decode("utf-8", errors="backslashreplace")
