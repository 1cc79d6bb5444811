"""`hfaid report --out DIR`: the funnel report as one self-contained HTML file plus PNGs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from hfaid.app import app
from hfaid.options import CatalogOpt, ConfigOpt, open_for_reading
from hfaid.output import print_summary


@app.command()
def report(
    out: Annotated[Path, typer.Option("--out", help="Folder for report.html and the PNG figures.")],
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Funnel, metric histograms with thresholds, best/worst montages, Table-3 comparison,
    reviewer statistics and thresholds learned from votes."""
    from curation.report.build import build_report  # matplotlib: only when a report is made
    from curation.stage1.clean import pool_view, stored_measurements

    cat, cfg = open_for_reading(catalog, config)
    start = time.perf_counter()
    measured = stored_measurements(cat, cfg.clean)
    stage1 = pool_view(measured, cfg.clean) if measured.num_rows else None
    written = build_report(cat, cfg.policy, out, stage1)
    print_summary(f"report in {out}", {
        "page": str(written["html"]),
        "figures": len(written["figures"]),
        "metrics": ", ".join(written["metrics"]) or "none scored yet",
        "seconds": time.perf_counter() - start,
    })
