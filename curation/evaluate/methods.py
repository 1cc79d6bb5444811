"""Methods to compare: NAME=FOLDER arguments, and the SR file standing for each test image."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from curation.evaluate.testset import IMAGE_EXTS
from curation.ingest.scan import content_id
from hfaid_core.errors import HfaidError

_NAME = re.compile(r"^[\w .+()-]{1,64}$")
OUTPUTS_SCHEMA = pa.schema([("name", pa.string()), ("output_id", pa.string()),
                            ("path", pa.string()), ("width", pa.int32()),
                            ("height", pa.int32()), ("status", pa.string())])


@dataclass(frozen=True)
class Method:
    name: str
    folder: Path
    kind: str = "folder"  # folder | baseline


def parse_method(text: str) -> Method:
    """`NAME=FOLDER` (a column title and a folder of SR outputs named like the LR files)."""
    name, sep, folder = text.partition("=")
    name = name.strip()
    if not sep or not folder.strip():
        raise HfaidError(f"--method {text!r}: write NAME=FOLDER, e.g. SeeSR=out/seesr")
    if not _NAME.match(name):
        raise HfaidError(f"--method {text!r}: the name may hold letters, digits, spaces and "
                         "._+()- (at most 64)")
    path = Path(folder.strip()).expanduser()
    if not path.is_dir():
        raise HfaidError(f"--method {name}: {path} is not a folder")
    return Method(name, path.resolve())


@dataclass
class Scan:
    table: pa.Table  # OUTPUTS_SCHEMA: one row per test image
    missing: int
    ambiguous: list[str]  # names with more than one candidate file (the first sorted is used)
    extra: int  # image files named like no test image


def scan_outputs(folder: Path, names: list[str]) -> Scan:
    """For each test image name, `<folder>/<name>.<image ext>`, its content id and size."""
    from PIL import Image

    candidates: dict[str, list[Path]] = {}
    files = sorted(p for p in Path(folder).iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_EXTS) if Path(folder).is_dir() \
        else []
    for path in files:
        candidates.setdefault(path.stem, []).append(path)
    rows, ambiguous = [], []
    for name in names:
        found = candidates.get(name, [])
        if len(found) > 1:
            ambiguous.append(name)
        if not found:
            rows.append({"name": name, "output_id": None, "path": None, "width": None,
                         "height": None, "status": "missing"})
            continue
        path = found[0]
        width = height = None
        try:
            with Image.open(path) as img:
                width, height = img.size
        except Exception:  # noqa: BLE001 - an unreadable file is the job's to report
            pass
        rows.append({"name": name, "output_id": content_id(path.read_bytes()),
                     "path": str(path), "width": width, "height": height, "status": "ok"})
    extra = sum(len(v) for k, v in candidates.items() if k not in set(names))
    return Scan(pa.Table.from_pylist(rows, schema=OUTPUTS_SCHEMA),
                sum(r["status"] == "missing" for r in rows), ambiguous, extra)
