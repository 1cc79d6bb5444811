"""The README.md datasheet of an export: counts, the funnel, Table-3-style score means, sources."""

from __future__ import annotations

from collections import Counter
from typing import Any

# Direction of each metric as the paper's Table 3 reads it (up = higher is better).
_DIRECTION = {"niqe": "down", "brisque": "down", "maniqa": "up", "clipiqa": "up",
              "clipiqa+": "up", "musiq": "up", "qalign_quality": "up", "qalign_aesthetic": "up"}


def render_datasheet(manifest: dict[str, Any], funnel: dict[str, Any],
                     means: list[dict[str, Any]], sources: list[str]) -> str:
    """Markdown text; deterministic for a given catalog state and options (no timestamps)."""
    counts, opts = manifest["counts"], manifest["options"]
    lines = [
        f"# Dataset {manifest['export_id']}",
        "",
        f"Exported by hfaid {manifest['hfaid_version']} as **{manifest['format']}** "
        f"({len(manifest.get('shards', []))} shards). Selection: status `{opts['status']}`, "
        f"captions `{opts['captions']}`, resize `{opts['resize']}`, image format "
        f"`{opts['image_format']}`"
        + (f", degraded x{opts['scale']} pairs (seed {opts['seed']})" if opts["pairs"] else "")
        + ".",
        "",
        "## Counts",
        "",
        "| | images |",
        "|---|---:|",
        f"| selected by status | {counts['selected']} |",
        f"| exported | {counts['exported']} |",
    ]
    lines += [f"| left out: {reason} | {n} |" for reason, n in sorted(counts["skipped"].items())]
    lines += ["", "## Funnel (catalog state at export time)", "",
              "| stage | seen | passed | rejected | errors |", "|---|---:|---:|---:|---:|"]
    for s in funnel["stages"]:
        if s["stage"] == "export":
            continue  # earlier exports would make this page depend on export history
        passed = f"not run ({s['not_run']})" if "not_run" in s else s["passed"]
        lines.append(f"| {s['stage']} | {s['seen']} | {passed} | {s['rejected']} | "
                     f"{s['errors']} |")
    lines += ["", "## Scores (mean, Table 3 style)", ""]
    iqa = [m for m in means if m["export_n"] and m["metric"] in _DIRECTION]
    other = [m for m in means if m["export_n"] and m["metric"] not in _DIRECTION]
    if iqa:
        lines += _means_table(iqa, with_direction=True)
    else:
        lines.append("No quality or aesthetic scores recorded for the exported images.")
    if other:
        lines += ["", "Stage-1 measurements (mean):", ""]
        lines += _means_table(other, with_direction=False)
    lines += ["", "## Sources", "", "| source | images |", "|---|---:|"]
    lines += [f"| {src} | {n} |" for src, n in sorted(Counter(sources).items())]
    lines += [
        "",
        "Licences: not recorded in the catalog; check each source's terms before redistribution.",
        "",
        "## Files",
        "",
        "`manifest.json` lists every shard (or file) with its sha256 and sample keys; it is "
        "written last, so a folder without it is an unfinished export. Each sample holds the "
        "image (`.jpg`/`.png`, original bytes unless resized), its caption (`.txt`) and "
        "metadata (`.json`: image_id, source path, size, every score with its version, the "
        "review vote summary, caption model)"
        + ("; `.lr.png` is the degraded low-resolution image and `.degradation.txt` its "
           "description." if opts["pairs"] else "."),
        "",
    ]
    return "\n".join(lines)


def _means_table(rows: list[dict[str, Any]], with_direction: bool) -> list[str]:
    head = "| metric | better | this dataset | n | whole scored pool | n |"
    rule = "|---|:-:|---:|---:|---:|---:|"
    if not with_direction:
        head, rule = head.replace(" better |", ""), rule.replace(":-:|", "", 1)
    out = [head, rule]
    for m in rows:
        arrow = {"up": "higher", "down": "lower"}.get(_DIRECTION.get(m["metric"], ""), "")
        better = f" {arrow} |" if with_direction else ""
        out.append(f"| {m['metric']} |{better} {_num(m['export_mean'])} | {m['export_n']} "
                   f"| {_num(m['pool_mean'])} | {m['pool_n']} |")
    return out


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:.4f}"
