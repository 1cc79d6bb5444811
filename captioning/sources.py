"""Source captions: sidecar .txt/.json files next to the images, or a Parquet/CSV column."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa

from hfaid_core.errors import HfaidError

# Keys tried, in order, in a sidecar .json (LAION/img2dataset write "caption").
JSON_KEYS = ("caption", "text", "TEXT", "prompt", "description")
SOURCE_SCHEMA = pa.schema([("image_id", pa.string()), ("source", pa.string()),
                           ("caption", pa.string())])


def sidecar_captions(paths: pa.Table) -> tuple[pa.Table, list[str]]:
    """Captions from `<stem>.txt` / `<stem>.json` (or `<name>.txt`) next to each path.

    Returns the rows found and one problem line per unreadable sidecar (never raises for one file).
    """
    rows, problems = [], []
    for item in paths.to_pylist():
        image = Path(item["path"])
        for source, candidates in (
            ("sidecar_txt", (image.with_suffix(".txt"), image.with_name(image.name + ".txt"))),
            ("sidecar_json", (image.with_suffix(".json"), image.with_name(image.name + ".json"))),
        ):
            for sidecar in candidates:
                if not sidecar.is_file():
                    continue
                try:
                    caption = _read_sidecar(sidecar)
                except (OSError, UnicodeDecodeError, ValueError) as exc:
                    problems.append(f"{sidecar}: {exc}")
                    break
                if caption:
                    rows.append(
                        {"image_id": item["image_id"], "source": source, "caption": caption}
                    )
                break
    return pa.Table.from_pylist(rows, schema=SOURCE_SCHEMA), problems


def _read_sidecar(path: Path) -> str | None:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".txt":
        return text.strip() or None
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    for key in JSON_KEYS:
        if isinstance(data.get(key), str) and data[key].strip():
            return data[key].strip()
    return None


def table_captions(table_file: Path, caption_column: str, path_column: str,
                   paths: pa.Table) -> pa.Table:
    """Captions from a Parquet/CSV table's column, matched to catalog paths by its path column.

    Relative paths in the table are taken relative to the table's folder (as ingest does).
    """
    table = _read_table(table_file)
    for column in (caption_column, path_column):
        if column not in table.column_names:
            raise HfaidError(
                f"{table_file}: no column {column!r}; columns: {', '.join(table.column_names)}"
            )
    by_path = dict(zip(paths.column("path").to_pylist(), paths.column("image_id").to_pylist(),
                       strict=True))
    base = table_file.parent
    source = f"table:{table_file.name}"
    rows = []
    for raw, caption in zip(table.column(path_column).to_pylist(),
                            table.column(caption_column).to_pylist(), strict=True):
        if raw is None or not isinstance(caption, str) or not caption.strip():
            continue
        image_id = by_path.get(os.path.abspath(os.path.join(base, str(raw))))
        if image_id is not None:
            rows.append({"image_id": image_id, "source": source, "caption": caption.strip()})
    return pa.Table.from_pylist(rows, schema=SOURCE_SCHEMA)


def _read_table(path: Path) -> pa.Table:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if not path.is_file():
        raise HfaidError(f"caption table {path} does not exist")
    try:
        if path.suffix.lower() == ".parquet":
            return pq.read_table(path)
        if path.suffix.lower() == ".csv":
            return pacsv.read_csv(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise HfaidError(f"caption table {path} cannot be read: {exc}") from None
    raise HfaidError(f"caption table {path}: expected a .parquet or .csv file")
