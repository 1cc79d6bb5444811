"""The evaluation job: pending (SR, HR) pairs on the shard runner; no-reference metrics through
the scoring job's worker, full-reference ones in batches of equal-size pairs."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa

from curation.evaluate.fullref import FULL_REFERENCE, build_fullref
from curation.scoring.job import ScoreSettings, ScoreWorker
from db.catalog import Catalog
from db.evaluation import REFERENCE_SEP, merge_eval_results, pending_pairs
from db.scoring import RESULT_SCHEMA
from hfaid_core.runner import JobStats, ShardJob, run_job

FULLREF_BATCH = 8  # pairs per full-reference batch: PSNR/SSIM are memory-bound, 8 fill a core


@dataclass(frozen=True)
class EvalSettings:
    """What a worker needs to rebuild the same metrics in another process (picklable)."""

    fullref: tuple[str, ...]
    score: ScoreSettings  # the no-reference metrics, run by the scoring job's worker
    shave: int = 4
    device: str = "cpu"
    weights_dir: str | None = None
    batch_size: int = FULLREF_BATCH
    versions: dict[str, str] = field(default_factory=dict)  # metric -> version, all metrics


def _decode(path: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB, as the scorers decode (EXIF orientation applied)."""
    from curation.scoring.scorers.base import InputPolicy
    from curation.scoring.scorers.inputs import load_hwc

    return load_hwc(path, InputPolicy(mode="full"))


class EvalWorker:
    """Built once per worker process: the full-reference metrics and a ScoreWorker."""

    def __init__(self, settings: EvalSettings) -> None:
        self.settings = settings
        self.fullref = {name: build_fullref(name, settings.device, settings.shave,
                                            settings.weights_dir) for name in settings.fullref}
        self.noref = ScoreWorker(settings.score) if settings.score.metrics else None
        # Decoding the pair's two PNGs overlaps with the previous batch's arithmetic.
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="hfaid-eval-decode")

    def process(self, items: pa.Table) -> pa.Table:
        rows = items.to_pylist()
        parts = [self._noref(rows), pa.Table.from_pylist(self._fullref(rows),
                                                         schema=RESULT_SCHEMA)]
        return pa.concat_tables([p for p in parts if p is not None])

    def _noref(self, rows: list[dict]) -> pa.Table | None:
        """No-reference metrics once per SR file (key "<output_id>|"), by the scoring job."""
        if self.noref is None:
            return None
        wanted = set(self.settings.score.metrics)
        per_output: dict[str, dict[str, Any]] = {}
        for row in rows:
            missing = [m for m in row["missing"] if m in wanted]
            if not missing:
                continue
            key = row["image_id"].split(REFERENCE_SEP)[0] + REFERENCE_SEP
            item = per_output.setdefault(key, {**row, "image_id": key, "missing": []})
            item["missing"] = sorted(set(item["missing"]) | set(missing))
        if not per_output:
            return None
        table = pa.Table.from_pylist(list(per_output.values())).select(
            ["image_id", "path", "width", "height", "exif_orientation", "missing"])
        return self.noref.process(table)

    def _fullref(self, rows: list[dict]) -> list[dict]:
        todo = [r for r in rows if set(r["missing"]) & set(self.fullref)]
        out: list[dict] = []
        batches = [todo[i:i + self.settings.batch_size]
                   for i in range(0, len(todo), self.settings.batch_size)]
        decoded = self.pool.map(self._decode_pairs, batches)
        for batch, pairs in zip(batches, decoded, strict=True):
            by_shape: dict[tuple, list[tuple[dict, np.ndarray, np.ndarray]]] = defaultdict(list)
            for row, (sr, hr, problem) in zip(batch, pairs, strict=True):
                if problem:
                    out.extend(self._rows(row, None, *problem))
                elif sr.shape != hr.shape:
                    detail = f"SR {sr.shape[1]}x{sr.shape[0]}, HR {hr.shape[1]}x{hr.shape[0]}"
                    out.extend(self._rows(row, None, "size_mismatch", detail))
                else:
                    by_shape[sr.shape].append((row, sr, hr))
            for group in by_shape.values():
                out.extend(self._score_group(group))
        return out

    def _decode_pairs(self, batch: list[dict]) -> list[tuple]:
        pairs = []
        for row in batch:
            try:
                pairs.append((_decode(row["path"]), _decode(row["ref_path"]), None))
            except Exception as exc:  # noqa: BLE001 - one bad file is one image's error
                reason = getattr(exc, "reason", "decode_failed")
                pairs.append((None, None, (reason, getattr(exc, "detail", str(exc)))))
        return pairs

    def _score_group(self, group: list[tuple[dict, np.ndarray, np.ndarray]]) -> list[dict]:
        sr = np.stack([s for _, s, _ in group])
        hr = np.stack([h for _, _, h in group])
        out = []
        for name, metric in self.fullref.items():
            members = [(k, row) for k, (row, _, _) in enumerate(group) if name in row["missing"]]
            if not members:
                continue
            index = np.array([k for k, _ in members])
            try:
                values = metric(sr[index], hr[index]).tolist()
            except Exception as exc:  # noqa: BLE001 - recorded per image; a re-run retries
                detail = f"{type(exc).__name__}: {exc}"[:500]
                out.extend(self._row(row, name, None, "score_failed", detail)
                           for _, row in members)
                continue
            infinite_ok = FULL_REFERENCE[name].infinite_ok
            for (_, row), value in zip(members, values, strict=True):
                if np.isfinite(value) or (infinite_ok and value == float("inf")):
                    out.append(self._row(row, name, float(value), "", ""))
                else:
                    out.append(self._row(row, name, None, "non_finite", f"value {value}"))
        return out

    def _rows(self, row: dict, value: float | None, reason: str, detail: str) -> list[dict]:
        return [self._row(row, m, value, reason, detail)
                for m in row["missing"] if m in self.fullref]

    def _row(self, row: dict, metric: str, value: float | None, reason: str,
             detail: str) -> dict:
        return {"image_id": row["image_id"], "metric": metric, "value": value,
                "version": self.settings.versions[metric],
                "status": "ok" if value is not None else "error",
                "reason": reason or None, "detail": detail or None}


def eval_settings(fullref: list[str], noref: list[str], versions: dict[str, str], shave: int,
                  device: str, weights_dir: str | None, decode_workers: int,
                  batch_size: int = 0) -> EvalSettings:
    score = ScoreSettings(metrics=tuple(noref), device=device, weights_dir=weights_dir,
                          decode_workers=decode_workers, batch_size=batch_size,
                          versions={m: versions[m] for m in noref})
    return EvalSettings(fullref=tuple(fullref), score=score, shave=shave, device=device,
                        weights_dir=weights_dir, versions=dict(versions),
                        batch_size=batch_size or FULLREF_BATCH)


def run_evaluation(catalog: Catalog, set_id: str, methods: list[str],
                   wanted: dict[str, tuple[str, bool]], settings: EvalSettings,
                   run_id: int | None, shard_size: int = 64, workers: int = 1) -> JobStats:
    """Score every (SR file, HR file) of these methods that lacks a wanted metric@version."""
    digest = hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()[:12]
    settings = dataclasses.replace(settings, versions={m: v for m, (v, _) in wanted.items()})
    job = ShardJob(
        name=f"evaluate-{digest}",
        work_dir=catalog.work_dir,
        pending=partial(pending_pairs, catalog, set_id, methods, wanted),
        worker_factory=partial(EvalWorker, settings),
        merge=partial(merge_eval_results, catalog, run_id=run_id),
        shard_size=shard_size,
        workers=max(1, workers),
        description="evaluate " + ",".join(wanted),
    )
    return run_job(job)
