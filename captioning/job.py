"""The caption job on the shard runner: decode next batch while the model generates this one."""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa

from captioning.captioner import Captioner, GenerationSettings, load_rgb, model_fingerprint
from captioning.checks import DEFAULT_BOILERPLATE, CheckSettings, check_caption
from captioning.models import ModelRef
from db.captions import RESULT_SCHEMA, flagged_to_recaption, images_to_caption, merge_caption_files
from db.catalog import Catalog
from hfaid_core.image_open import DEFAULT_MAX_PIXELS, TooLarge
from hfaid_core.runner import JobStats, ShardJob, run_job
from hfaid_core.settings.caption import CaptionConfig

DECODE_THREADS = min(8, os.cpu_count() or 1)


@dataclass(frozen=True)
class CaptionSpec:
    """Everything a worker needs to caption; picklable, so pool workers can rebuild it."""

    model: ModelRef
    fingerprint: str
    task: str
    device: str
    dtype: str
    batch_size: int
    generation: GenerationSettings
    checks: CheckSettings = field(default_factory=CheckSettings)
    max_pixels: int = DEFAULT_MAX_PIXELS  # [decode]: larger images get `too_large`, undecoded

    @property
    def version(self) -> str:
        """model@weights:settings; one caption row per (image, version)."""
        return f"{self.model.name}@{self.fingerprint}:{self.generation.tag()}"


def build_spec(model: ModelRef, cfg: CaptionConfig, recaption: bool = False,
               batch_size: int | None = None, device: str | None = None,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> CaptionSpec:
    """The spec for a first pass (config generation settings) or a re-caption pass."""
    generation = GenerationSettings(num_beams=cfg.num_beams, max_new_tokens=cfg.max_new_tokens)
    if recaption:
        generation = replace(
            generation, num_beams=cfg.recaption_num_beams,
            max_new_tokens=cfg.recaption_max_new_tokens,
            repetition_penalty=cfg.recaption_repetition_penalty,
            no_repeat_ngram_size=cfg.recaption_no_repeat_ngram_size,
        )
    checks = CheckSettings(
        min_words=cfg.min_words, ngram=cfg.ngram, max_ngram_repeats=cfg.max_ngram_repeats,
        max_repeated_share=cfg.max_repeated_share,
        boilerplate=DEFAULT_BOILERPLATE + list(cfg.extra_boilerplate),
    )
    return CaptionSpec(
        model=model, fingerprint=model_fingerprint(model.folder), task=cfg.task,
        device=device or cfg.device, dtype=cfg.dtype, batch_size=batch_size or cfg.batch_size,
        generation=generation, checks=checks, max_pixels=max_pixels,
    )


class CaptionWorker:
    """Loads the model on first use; turns a shard of (image_id, path) into caption rows."""

    def __init__(self, spec: CaptionSpec) -> None:
        self.spec = spec
        self._captioner: Captioner | None = None

    @property
    def captioner(self) -> Captioner:
        if self._captioner is None:
            s = self.spec
            self._captioner = Captioner(s.model.folder, s.device, s.dtype, s.task, s.generation)
        return self._captioner

    def process(self, items: pa.Table) -> pa.Table:
        captioner = self.captioner
        rows = items.select(["image_id", "path"]).to_pylist()
        size = max(1, self.spec.batch_size)
        batches = [rows[i : i + size] for i in range(0, len(rows), size)]
        out: list[dict[str, Any]] = []
        # One helper thread prepares batch i+1 while batch i generates; its images are decoded
        # by a few more threads (Pillow releases the GIL while decoding), so a large batch of
        # big JPEGs is ready before a fast GPU finishes the current one.
        decode_threads = min(DECODE_THREADS, size)
        with ThreadPoolExecutor(max_workers=1) as pool, \
                ThreadPoolExecutor(max_workers=decode_threads) as decoder:
            prepare = partial(self._prepare, captioner, decoder=decoder)
            ahead = pool.submit(prepare, batches[0]) if batches else None
            for i in range(len(batches)):
                prepared = ahead.result()
                if i + 1 < len(batches):
                    ahead = pool.submit(prepare, batches[i + 1])
                out.extend(self._generate(captioner, *prepared))
        return pa.Table.from_pylist(out, schema=RESULT_SCHEMA)

    def _prepare(self, captioner: Captioner, batch: list[dict],
                 decoder: ThreadPoolExecutor) -> tuple:
        ok, images, failed = [], [], []
        load = partial(_load, max_pixels=self.spec.max_pixels)
        for row, image in zip(batch, decoder.map(load, [r["path"] for r in batch]), strict=True):
            if isinstance(image, TooLarge):
                failed.append(self._row(row, status="error", reason=image.reason,
                                        detail=image.detail))
            elif isinstance(image, Exception):  # a decoder complaint is this image's error
                failed.append(self._row(row, status="error", reason="image_unreadable",
                                        detail=_one_line(image)))
            else:
                images.append(image)
                ok.append(row)
        inputs = None
        if images:
            try:
                inputs = captioner.prepare(images)
            except Exception as exc:
                failed.extend(self._row(r, status="error", reason="preprocess_failed",
                                        detail=_one_line(exc)) for r in ok)
                ok, images = [], []
        return ok, images, inputs, failed

    def _generate(self, captioner: Captioner, ok: list[dict], images: list, inputs: Any,
                  failed: list[dict]) -> list[dict]:
        if not ok:
            return failed
        sizes = [im.size for im in images]
        try:
            results = captioner.generate(inputs, sizes)
        except Exception as exc:
            if len(ok) == 1:
                return failed + [self._row(ok[0], status="error", reason="generate_failed",
                                           detail=_one_line(exc))]
            # A batch failure (e.g. out of memory) is retried image by image before giving up.
            rows = list(failed)
            for row, image in zip(ok, images, strict=True):
                rows.extend(self._generate(captioner, [row], [image],
                                           captioner.prepare([image]), []))
            return rows
        rows = list(failed)
        for row, result in zip(ok, results, strict=True):
            flags = check_caption(result.text, result.truncated, self.spec.checks)
            rows.append(self._row(
                row, caption=result.text, flags=flags, n_tokens=result.n_tokens,
                status="reject" if flags else "pass",
                reason=f"caption_{flags[0]}" if flags else None,
                detail=",".join(flags) or None,
            ))
        return rows

    def _row(self, item: dict, **values: Any) -> dict[str, Any]:
        base = {
            "image_id": item["image_id"], "model": self.spec.model.name,
            "version": self.spec.version, "caption": None, "flags": [], "n_tokens": None,
            "settings": self.spec.generation.to_json(), "status": None, "reason": None,
            "detail": None,
        }
        base.update(values)
        return base


def _load(path: str, max_pixels: int) -> Any:
    """The decoded image, or the exception that decoding raised (kept as a per-image error)."""
    try:
        return load_rgb(path, max_pixels)
    except Exception as exc:
        return exc


def _one_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def job_name(version: str) -> str:
    """Result folder per version, so results of two settings never mix."""
    return "caption-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", version)[-120:]


def run_caption_job(catalog: Catalog, spec: CaptionSpec, stage: str | None, run_id: int,
                    shard_size: int, recaption: bool = False) -> JobStats:
    """Caption pending images (or flagged ones) in shards; killing and re-running resumes."""
    if recaption:
        pending = partial(flagged_to_recaption, catalog, spec.version)
    else:
        pending = partial(images_to_caption, catalog, stage, spec.version)
    job = ShardJob(
        name=job_name(spec.version),
        work_dir=catalog.work_dir,
        pending=pending,
        worker_factory=partial(CaptionWorker, spec),
        merge=partial(_merge, catalog, run_id),
        shard_size=shard_size,
        workers=1,  # one model per device; the worker overlaps decoding with generation
        description="recaption" if recaption else "caption",
        run_id=run_id,
    )
    return run_job(job)


def _merge(catalog: Catalog, run_id: int, files: list[Path]) -> int:
    return merge_caption_files(catalog, files, run_id)
