"""What an export holds: the selected images with caption, votes, scores and a safe sample key."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from db.catalog import Catalog
from db.exports import export_inputs
from db.stages import UnknownStageError, resolve_stage_input, stage_input_names
from hfaid_core.errors import HfaidError
from hfaid_core.settings.export import ExportConfig

# --status value -> (stage, outcome status); "passed:STAGE" takes any stage that passed.
STATUSES = {
    "accepted": ("review", "pass"),
    "rejected": ("review", "reject"),
    "queued": ("review_queue", "pass"),
    "all": (None, None),
}
KEY_RE = re.compile(r"^[A-Za-z0-9_-]+$")  # no dots (WebDataset splits there), no slashes, no ".."
FORMAT_EXT = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}


@dataclass
class Item:
    """One sample to write: where its bytes are, its text and its metadata."""

    key: str
    image_id: str
    path: str
    format: str | None
    caption: str
    meta: dict[str, Any]


@dataclass
class Plan:
    items: list[Item]
    skipped: dict[str, list[str]] = field(default_factory=dict)  # reason -> image_ids
    selected: int = 0
    runs: list[dict[str, Any]] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)  # image folders (exports stay out)

    def fingerprint(self, options: dict[str, Any]) -> str:
        """Export id: a hash of all that decides the bytes (same catalog + options, same id)."""
        body = json.dumps({"options": options, "items": [asdict(i) for i in self.items],
                           "runs": self.runs}, sort_keys=True, default=str)
        return "exp-" + hashlib.sha256(body.encode()).hexdigest()[:16]


def parse_status(status: str) -> tuple[str | None, str | None]:
    if status in STATUSES:
        return STATUSES[status]
    if status.startswith("passed:"):
        try:  # the funnel's stage names, with the same meaning as every --stage-input
            stage = resolve_stage_input(status[7:])
        except UnknownStageError:
            pass
        else:
            return (stage, "pass") if stage else (None, None)
    raise HfaidError(
        f"--status {status!r} is not one of {', '.join(STATUSES)} or passed:STAGE "
        f"(STAGE one of {', '.join(stage_input_names())})"
    )


def sample_key(image_id: str) -> str:
    """The sample key: the content id, checked so that no key can escape or split a sample."""
    if not KEY_RE.match(image_id) or ".." in image_id:
        raise HfaidError(f"image id {image_id!r} cannot be used as a sample key (dots or slashes)")
    return image_id


def build_plan(catalog: Catalog, cfg: ExportConfig) -> Plan:
    """Select images by status, attach captions, votes and scores; record why any are left out."""
    stage, status = parse_status(cfg.status)
    inputs = export_inputs(catalog, stage, status)
    candidates = inputs.candidates.to_pylist()
    captions = _captions(catalog)
    sources = _source_captions(catalog) if cfg.captions == "any" else {}
    votes = _votes(catalog)
    scores: dict[str, list[dict[str, Any]]] = {}
    for row in inputs.scores.to_pylist():
        scores.setdefault(row["image_id"], []).append(
            {"metric": row["metric"], "version": row["version"], "value": row["value"]})
    plan = Plan(items=[], selected=len(candidates), folders=inputs.folders)
    for c in candidates:
        cap = captions.get(c["image_id"])
        if cap is not None and (cap["flags"] and cfg.captions == "required"):
            plan.skipped.setdefault("caption_flagged", []).append(c["image_id"])
            continue
        if cap is None and c["image_id"] in sources:
            text, source = sources[c["image_id"]]
            cap = {"caption": text, "model": f"source:{source}", "version": "", "flags": []}
        if cap is None and cfg.captions == "required":
            plan.skipped.setdefault("no_caption", []).append(c["image_id"])
            continue
        cap = cap or {"caption": "", "model": "", "version": "", "flags": []}
        meta = {
            "image_id": c["image_id"], "path": c["path"], "source": c["source"],
            "width": c["width"], "height": c["height"], "format": c["format"],
            "scores": scores.get(c["image_id"], []),
            "votes": votes.get(c["image_id"], _NO_VOTES),
            "caption_model": cap["model"], "caption_version": cap["version"],
            "caption_flags": list(cap["flags"]),
        }
        plan.items.append(Item(sample_key(c["image_id"]), c["image_id"], c["path"], c["format"],
                               cap["caption"], meta))
    kept = {i.image_id for i in plan.items}
    runs = {(r["run_id"], r["command"]) for r in inputs.runs.to_pylist() if r["image_id"] in kept}
    plan.runs = [{"run_id": r, "command": c} for r, c in sorted(runs)]
    return plan


# Same types in every sample: Hugging Face `datasets` infers a schema from the first samples.
_NO_VOTES = {"accepts": 0, "rejects": 0, "reviewers": [], "decided_by": "", "status": ""}


def _captions(catalog: Catalog) -> dict[str, dict[str, Any]]:
    try:
        from db.captions import latest_captions
    except ImportError:  # the captioning module is optional for an export of uncaptioned sets
        return {}
    return {r["image_id"]: r for r in _safe_table(latest_captions, catalog)}


def _source_captions(catalog: Catalog) -> dict[str, tuple[str, str]]:
    try:
        from db.captions import source_captions
    except ImportError:
        return {}
    found: dict[str, tuple[str, str]] = {}
    for r in _safe_table(source_captions, catalog):
        found.setdefault(r["image_id"], (r["caption"], r["source"]))
    return found


def _votes(catalog: Catalog) -> dict[str, dict[str, Any]]:
    try:
        from db.review import vote_summary
    except ImportError:
        return {}
    return {
        r["image_id"]: {"accepts": int(r["accepts"] or 0), "rejects": int(r["rejects"] or 0),
                        "reviewers": sorted(r["reviewers"] or []),
                        "decided_by": r["decided_by"] or "", "status": r["status"] or ""}
        for r in _safe_table(vote_summary, catalog)
    }


def _safe_table(fn, catalog: Catalog) -> list[dict[str, Any]]:
    from db.errors import CatalogError

    try:
        return fn(catalog).to_pylist()
    except CatalogError:
        raise
    except Exception as exc:  # noqa: BLE001 - a missing table (older catalog) means no rows
        if "does not exist" in str(exc):
            return []
        raise
