"""The Table-1-style table: methods as columns, metrics as rows, best in bold; MD, CSV, Parquet."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from curation.evaluate.metrics import eval_metric


@dataclass
class Cell:
    mean: float | None
    scored: int  # images with a value
    total: int  # images in the set
    errors: int  # images whose output is missing or failed for this metric

    @property
    def complete(self) -> bool:
        return self.mean is not None and self.scored == self.total


@dataclass
class Row:
    metric: str
    label: str  # "PSNR (Y, shave 4) ↑"
    digits: int
    lower_better: bool
    cells: dict[str, Cell]
    best: set[str] = field(default_factory=set)
    note: str = ""

    def text(self, method: str) -> str:
        cell = self.cells[method]
        if cell.mean is None:
            return "n/a" if self.note else "-"
        value = f"{cell.mean:.{self.digits}f}"
        if not cell.complete:
            value += f" ({cell.scored}/{cell.total})"
        return value


@dataclass
class EvalTable:
    methods: list[str]
    rows: list[Row]
    caption: str
    images: int

    def as_dict(self) -> dict[str, Any]:
        """For the HTML report's template."""
        return {"methods": self.methods, "caption": self.caption, "images": self.images,
                "rows": [{"label": r.label, "note": r.note,
                          "cells": [{"text": r.text(m), "best": m in r.best}
                                    for m in self.methods]} for r in self.rows]}


def protocol_caption(protocol: dict[str, Any], images: int) -> str:
    """The conventions behind the numbers, stated under every table."""
    shave = protocol.get("shave", 0)
    return (f"{images} test images: HR {protocol['hr_size']}x{protocol['hr_size']} centre crops, "
            f"LR x{protocol['scale']} by the Real-ESRGAN second-order degradation (seed "
            f"{protocol['seed']}). PSNR and SSIM on the Y channel of YCbCr (ITU-R BT.601), "
            f"{shave} px shaved from each border; SSIM with an 11x11 Gaussian window "
            "(sigma 1.5). ↑ higher is better, ↓ lower is better; bold: best of each row.")


def build_table(per_image: pa.Table, layout: dict[str, Any]) -> EvalTable:
    """Means over the set's images per (method, metric), from `db.evaluation.per_image_scores`
    rows; a mean over fewer images than the set says so, and is never marked best."""
    methods = [m["method"] for m in layout["methods"]]
    total, shave = int(layout["images"]), int(layout["shave"])
    sums: dict[tuple[str, str], list[float]] = {}
    errors: dict[tuple[str, str], int] = {}
    for row in per_image.to_pylist():
        key = (row["method"], row["metric"])
        if row["value"] is not None:
            sums.setdefault(key, []).append(row["value"])
        elif row["status"] in ("error", "missing"):
            errors[key] = errors.get(key, 0) + 1
    rows = []
    for name in layout["metrics"]:
        metric = eval_metric(name)
        label = metric.label + (f" (Y, shave {shave})" if name in ("psnr", "ssim") else "")
        label += " ↓" if metric.lower_better else " ↑"
        cells = {}
        for method in methods:
            values = sums.get((method, name), [])
            mean = math.fsum(values) / len(values) if values else None
            cells[method] = Cell(mean, len(values), total, errors.get((method, name), 0))
        row = Row(name, label, metric.digits, metric.lower_better, cells,
                  note=layout["notes"].get(name, ""))
        complete = {m: round(c.mean, metric.digits) for m, c in cells.items() if c.complete}
        if len(complete) > 1:
            best = (min if metric.lower_better else max)(complete.values())
            row.best = {m for m, v in complete.items() if v == best}
        rows.append(row)
    protocol = {**layout["protocol"], "shave": shave}
    return EvalTable(methods, rows, protocol_caption(protocol, total), total)


def to_markdown(table: EvalTable) -> str:
    has_notes = any(r.note for r in table.rows)
    header = ["Metric", *table.methods] + (["Note"] if has_notes else [])
    lines = ["| " + " | ".join(header) + " |",
             "|---|" + "---:|" * len(table.methods) + ("---|" if has_notes else "")]
    for row in table.rows:
        cells = [f"**{row.text(m)}**" if m in row.best else row.text(m) for m in table.methods]
        lines.append("| " + " | ".join([row.label, *cells] + ([row.note] if has_notes else []))
                     + " |")
    return "\n".join(lines) + "\n\n" + table.caption + "\n"


def to_csv(table: EvalTable) -> str:
    """Numbers at full precision (empty where there is none), the images behind each, a note."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["metric", "lower_better", *table.methods,
                     *[f"{m} images" for m in table.methods], "best", "note"])
    for row in table.rows:
        means = [row.cells[m].mean for m in table.methods]
        writer.writerow([row.metric, row.lower_better,
                         *["" if v is None else repr(v) for v in means],
                         *[row.cells[m].scored for m in table.methods],
                         ";".join(m for m in table.methods if m in row.best), row.note])
    return out.getvalue()


def write_outputs(table: EvalTable, per_image: pa.Table, out: Path) -> dict[str, Path]:
    """table.md, table.csv and per_image.parquet in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / "table.md", "csv": out / "table.csv",
             "parquet": out / "per_image.parquet"}
    paths["markdown"].write_text(to_markdown(table), encoding="utf-8")
    paths["csv"].write_text(to_csv(table), encoding="utf-8")
    pq.write_table(per_image, paths["parquet"])
    return paths
