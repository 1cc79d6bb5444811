"""The scoring job: pending (image, metric@version) pairs scored in size-bucketed batches."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import sys
from collections import defaultdict
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch.utils.data import DataLoader, Dataset

from curation.scoring.scorers import (
    Scorer,
    create_scorer,
    get_scorer_spec,
    resolve_device,
    scorer_version,
)
from curation.scoring.scorers.base import InputPolicy
from curation.scoring.scorers.inputs import InputError, load_hwc
from curation.scoring.scorers.precision import compute_dtype
from curation.scoring.timing import DECODE_WAIT, LAUNCH, RESULT_WAIT, TOTAL, PartTimes
from db.catalog import Catalog
from db.scoring import RESULT_SCHEMA, merge_score_results, pending_scores
from hfaid_core.errors import HfaidError
from hfaid_core.image_open import DEFAULT_MAX_PIXELS, TooLarge, decode_bytes
from hfaid_core.processes import die_with_parent
from hfaid_core.runner import JobStats, ShardJob, run_job
from hfaid_core.settings.decode import DecodeConfig
from hfaid_core.settings.score import decode_workers_for, on_gpu
from hfaid_core.shm_buffers import (
    ReturnedBuffers,
    batch_buffer,
    fits_a_worker,
    processes_on_this_machine,
    shared_memory_share,
    workers_footprint,
    workers_that_fit,
)


@dataclass(frozen=True)
class ScoreSettings:
    """Everything a worker needs to rebuild the same scorers in another process (picklable)."""

    metrics: tuple[str, ...]
    device: str = "cpu"
    dtype: str | None = None  # None/"auto": float32 on CPU, half where declared safe on GPU
    weights_dir: str | None = None
    batch_size: int = 0  # 0 = each metric's declared default for the device (ScorerSpec)
    # DataLoader processes decoding images next to the model; -1 = auto, resolved by the worker
    # on its own machine (decode_workers_for: a Ray head node has other cores than GPU nodes)
    decode_workers: int = 2
    threads: int = 0  # torch intra-op threads per worker process (0 = torch's default)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-metric overrides
    # metric -> the version the job's pending list was computed for ({} = not checked)
    versions: dict[str, str] = field(default_factory=dict)
    max_pixels: int = DEFAULT_MAX_PIXELS  # [decode]: larger images are `too_large`, undecoded
    image_memory_mb: int = DecodeConfig.image_memory_mb  # [decode]: per image and metric


def metric_options(settings: ScoreSettings, metric: str) -> dict[str, Any]:
    return dict(settings.options.get(metric, {}))


def batch_cell(settings: ScoreSettings) -> int:
    """The cell the pending list keeps together: the largest any of the metrics batches."""
    return max(get_scorer_spec(m).batch_cell for m in settings.metrics)


def metric_versions(settings: ScoreSettings) -> dict[str, str]:
    """metric -> version; checks weights before any work (missing file = one clear error)."""
    device = resolve_device(settings.device)
    versions = {}
    for m in settings.metrics:
        spec = get_scorer_spec(m)
        dtype = compute_dtype(spec, device, settings.dtype)
        versions[m] = scorer_version(spec, settings.weights_dir, metric_options(settings, m), dtype)
    return versions


class _Decode(Dataset):
    """Decodes the (index, path) keys the sampler yields; failures come back as (reason, detail)."""

    def __init__(self, policy: InputPolicy, max_pixels: int) -> None:
        self.policy, self.max_pixels = policy, max_pixels

    def __len__(self) -> int:  # keys come from the batch sampler, not from a range
        return 0

    def __getitem__(self, key: tuple[int, str]) -> tuple[int, np.ndarray | None, str, str]:
        index, path = key
        try:
            return index, load_hwc(path, self.policy, self.max_pixels), "", ""
        except InputError as exc:
            return index, None, exc.reason, exc.detail
        except Exception as exc:  # a decoder bug must cost one image, not the shard
            return index, None, "decode_failed", f"{type(exc).__name__}: {exc}"


class _ShardBatches:
    """A batch sampler refilled per shard: one DataLoader (and its workers) serves all shards."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[int, str]]] = []

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


@dataclass
class _Decoded:
    """One decoded batch: per-image failures, and equal-shape images stacked in one tensor."""

    failures: list[tuple[int, str, str]]
    groups: list[tuple[list[int], torch.Tensor]]
    flag: torch.Tensor | None = None  # the worker's shared buffer holding `groups`, if any

    @staticmethod
    def join(pieces: list[_Decoded], device: torch.device) -> _Decoded:
        """Pieces of one model batch as one, each shape's images concatenated on `device`.

        A shape that comes in one piece is used as it is (on CPU: still in the worker's
        buffer, which is handed back only after the batch is launched)."""
        failures = [f for piece in pieces for f in piece.failures]
        by_shape: dict[tuple, list[tuple[list[int], torch.Tensor]]] = defaultdict(list)
        for piece in pieces:
            for indices, stacked in piece.groups:
                by_shape[tuple(stacked.shape[1:])].append((indices, stacked))
        groups = []
        for parts in by_shape.values():
            on_device = [t.to(device, non_blocking=True) for _, t in parts]
            joined = on_device[0] if len(on_device) == 1 else torch.cat(on_device)
            groups.append(([i for indices, _ in parts for i in indices], joined))
        return _Decoded(failures, groups)

    def pin_memory(self) -> _Decoded:
        """Called by the DataLoader's pin thread on GPU runs: page-locked pieces are copied to
        the device asynchronously, while the model's thread launches the previous batch.
        The worker's buffer goes back once the model's thread has launched the batch."""
        return _Decoded(self.failures, [(i, t.pin_memory()) for i, t in self.groups], self.flag)


@dataclass
class _Launched:
    """A batch whose forward pass is queued on the device; its scores are read later."""

    scorer: Scorer
    indices: list[int]
    output: torch.Tensor


def _stack_by_shape(items: list[tuple[int, np.ndarray | None, str, str]]) -> _Decoded:
    """The DataLoader's collate: runs in the decode worker, so the model's process receives one
    (N, 3, H, W) tensor per shape instead of stacking dozens of images itself between batches.
    All shapes share one buffer, reused shared memory in a worker (`batch_buffer`), and each
    image is transposed to channels-first while it is copied in. Catalog sizes can be stale,
    hence grouping by the real decoded shape."""
    failures: list[tuple[int, str, str]] = []
    by_shape: dict[tuple, list[tuple[int, np.ndarray]]] = defaultdict(list)
    for index, image, reason, detail in items:
        if image is None:
            failures.append((index, reason, detail))
        else:
            by_shape[image.shape].append((index, image))
    total = sum(len(m) * math.prod(shape) for shape, m in by_shape.items())
    if not total:
        return _Decoded(failures, [])
    payload, flag = batch_buffer(total)
    groups, offset = [], 0
    for (height, width, channels), members in by_shape.items():
        size = len(members) * height * width * channels
        stacked = payload[offset : offset + size].view(len(members), channels, height, width)
        for k, (_, image) in enumerate(members):
            np.copyto(stacked[k].numpy(), image.transpose(2, 0, 1))
        groups.append(([i for i, _ in members], stacked))
        offset += size
    return _Decoded(failures, groups, flag)


def share_buffers_by_name(_worker_id: int) -> None:
    """A decode worker's setup: its buffers go to the model's process by shared-memory name.

    With torch's default (file descriptors), receiving each piece took a round trip to a
    thread of the worker that sends the descriptor, even for a buffer already mapped, and that
    thread waits for the worker's GIL while it decodes: ~2-4 ms per piece of waiting on 2 busy
    cores. By name, a buffer the model's process still maps is found in torch's cache with no
    round trip; torch_shm_manager removes the segments when the processes exit, killed too.
    Where that manager cannot start (no writable temp dir for its socket, a no-exec install),
    descriptors it stays."""
    torch.multiprocessing.set_sharing_strategy("file_system")
    try:
        torch.UntypedStorage._new_shared(1)
    except Exception:  # RuntimeError from libshm; slower, but the job runs
        torch.multiprocessing.set_sharing_strategy("file_descriptor")


def _init_decode_worker(parent: int, setup: Callable[[int], None] | None, worker_id: int) -> None:
    """A decode worker dies with the model's process (even a kill -9), then sets up."""
    die_with_parent(parent)
    if setup is not None:
        setup(worker_id)


DECODE_PIECES = 4  # pieces per model batch, when there are workers to decode them in parallel
PREFETCH_PIECES = 4  # per decode worker (the DataLoader's prefetch_factor)


def plan_pieces(batches: list[list[int]], workers: int) -> list[list[list[int]]]:
    """Each model batch as a few pieces for different workers: the first batch of a shard is
    ready after one piece's decode instead of a whole batch's; pieces join on the device."""
    return [split_for_workers(batch, workers) for batch in batches]


def largest_piece_bytes(plan: list[list[list[int]]], shapes: list[tuple[int, int]]) -> int:
    """uint8 RGB bytes of the largest piece (a piece's images share one predicted shape)."""
    sizes = (3 * shapes[p[0]][0] * shapes[p[0]][1] * len(p) for pieces in plan for p in pieces)
    return max(sizes, default=0)


def split_for_workers(batch: list[int], workers: int) -> list[list[int]]:
    """A model batch in up to DECODE_PIECES near-equal pieces (whole, without workers)."""
    parts = min(DECODE_PIECES, max(1, workers), len(batch))
    size = -(-len(batch) // parts)
    return [batch[i : i + size] for i in range(0, len(batch), size)]


def size_buckets(
    shapes: list[tuple[int, int]], batch_size: int, cell: int = 1
) -> list[list[int]]:
    """Indices grouped by equal predicted shape, in batches of at most batch_size; shapes of
    one `cell` (sides rounded down to its multiples) come one after another, so a metric that
    batches a cell (`ScorerSpec.batch_cell`) finds them together, and by area, so a metric
    that batches mixed sizes pads little (`ScorerSpec.batches_mixed_sizes`)."""
    by_shape: dict[tuple[int, int], list[int]] = defaultdict(list)
    for index, shape in enumerate(shapes):
        by_shape[shape].append(index)

    def order(hw: tuple[int, int]) -> tuple:
        area = (hw[0] * hw[1], hw)
        return area if cell == 1 else (hw[0] // cell, hw[1] // cell, *area)

    batches = []
    for shape in sorted(by_shape, key=order):
        members = by_shape[shape]
        batches += [members[i : i + batch_size] for i in range(0, len(members), batch_size)]
    return batches


Launch = Callable[..., None]  # (scorer, indices, batch, prepared=False): see _launch


class _BatchQueue:
    """One metric's images waiting for a full batch of its size, across the decoded batches
    that follow each other. Images join that have equal batch shapes: equal decoded shapes, for
    NIQE shapes within one 96-px cell (cropped to it), and for a metric that batches mixed
    sizes (MUSIQ) any shape, as its prepared inputs. A new batch shape sends what waits."""

    def __init__(self, scorer: Scorer, size: int) -> None:
        self.scorer, self.size = scorer, size
        self.mixed = scorer.spec.batches_mixed_sizes
        self.indices: list[int] = []
        self.waiting: torch.Tensor | None = None

    def add(self, indices: list[int], images: torch.Tensor, launch: Launch) -> None:
        if self.mixed:
            try:
                images = self.scorer.prepare(images)
            except Exception:  # scored as images: _launch records which one fails, and why
                launch(self.scorer, indices, images)
                return
            if self.waiting is not None and not _pads_little(self.waiting, images):
                self.flush(launch)
        else:
            height, width = self.scorer.spec.batch_shape(*images.shape[2:])
            images = images[..., :height, :width]
            if self.waiting is not None and self.waiting.shape[1:] != images.shape[1:]:
                self.flush(launch)
        if self.waiting is not None:
            parts = [self.waiting, images]
            try:
                images = self.scorer.built.join(parts) if self.mixed else torch.cat(parts)
            except Exception:  # out of device memory, say: what waits goes on its own
                self.flush(launch)
        indices = self.indices + indices
        start = 0
        while len(indices) - start >= self.size:
            end = start + self.size
            launch(self.scorer, indices[start:end], images[start:end], prepared=self.mixed)
            start = end
        # What is left waits for the next decoded batch. It may be a view of a decode worker's
        # buffer, which goes back once this batch is launched: hence the copy (at most a
        # batch of images, and none at batch 1).
        self.indices = indices[start:]
        self.waiting = images[start:].clone() if self.indices else None

    def flush(self, launch: Launch) -> None:
        if self.indices:
            launch(self.scorer, self.indices, self.waiting, prepared=self.mixed)
            self.indices, self.waiting = [], None


MAX_PADDING = 1.25  # a mixed-size batch pads each input to its longest: at most 25% more


def _pads_little(waiting: torch.Tensor, new: torch.Tensor) -> bool:
    """Whether prepared inputs of these two lengths (dim 1: MUSIQ's tokens) may share a batch:
    each row computes the padded length, so lengths far apart would waste most of it."""
    short, long = sorted((waiting.shape[1], new.shape[1]))
    return long <= MAX_PADDING * short


def check_versions(scorers: dict[str, Scorer], expected: dict[str, str]) -> None:
    """A worker whose scorers have other versions than the job expects (another pyiqa or other
    weights on a cluster node, a GPU without bf16) would write rows that the job never counts
    as done, so every re-run would score those images again: fail instead, naming both."""
    for name, scorer in scorers.items():
        if name in expected and scorer.version != expected[name]:
            raise HfaidError(
                f"{name} computes as version {scorer.version} here but the job expects "
                f"{expected[name]}: install the same pyiqa and weights (and use the same --dtype "
                "and GPU type) on every machine of the job"
            )


class ScoreWorker:
    """Built once per worker process: the scorers, grouped by the input tensor they share."""

    def __init__(self, settings: ScoreSettings) -> None:
        workers = decode_workers_for(settings.device, settings.decode_workers)
        settings = dataclasses.replace(settings, decode_workers=workers)
        self.settings = settings
        if settings.threads:
            torch.set_num_threads(settings.threads)
        self.scorers: dict[str, Scorer] = {
            m: create_scorer(
                m,
                device=settings.device,
                dtype=settings.dtype,
                weights_dir=settings.weights_dir,
                **metric_options(settings, m),
            )
            for m in settings.metrics
        }
        check_versions(self.scorers, settings.versions)
        groups: dict[InputPolicy, list[Scorer]] = defaultdict(list)
        for scorer in self.scorers.values():
            # Decode once per tensor shape policy; each metric's minimum size is checked after.
            key = dataclasses.replace(scorer.input_policy, min_side=1)
            groups[key].append(scorer)
        # One decode per distinct policy: niqe, brisque, maniqa, musiq, clipiqa share "full".
        self.groups = list(groups.items())
        # Persistent decode workers per (policy, worker count): started once, then fed shard
        # after shard (a count of 0 decodes in this process, see _decode_workers).
        self.loaders: dict[tuple[InputPolicy, int], tuple[DataLoader, _ShardBatches]] = {}
        self.returned = ReturnedBuffers()  # the workers' batch buffers, handed back after use
        # None where there is no /dev/shm to check; a share where other scorers fill it too.
        self.shm_bytes = shared_memory_share()
        self.warned_shm = False
        self.times = PartTimes()  # where `process` spends its time (`take_timings`)

    def take_timings(self) -> dict[str, float]:
        """Seconds per part of `process` since last asked (`curation.scoring.timing`)."""
        return self.times.take()

    def _loader(self, policy: InputPolicy, workers: int) -> tuple[DataLoader, _ShardBatches]:
        if (policy, workers) not in self.loaders:
            # Other worker counts for this policy stop: idle workers would keep their buffers
            # (the in-process loader, for images too large for a worker, has none).
            for key in [k for k in self.loaders if k[0] == policy and k[1] and workers]:
                del self.loaders[key]
            sampler = _ShardBatches()
            loader = DataLoader(
                _Decode(policy, self.settings.max_pixels),
                batch_sampler=sampler,
                num_workers=workers,
                collate_fn=_stack_by_shape,
                persistent_workers=workers > 0,
                prefetch_factor=PREFETCH_PIECES if workers > 0 else None,
                worker_init_fn=partial(_init_decode_worker, os.getpid(), share_buffers_by_name),
                # Pieces arrive stacked (collate runs in the worker), so pinning is one copy per
                # piece, done by the DataLoader's own thread; only a GPU reads pinned memory.
                pin_memory=workers > 0 and torch.device(self.settings.device).type == "cuda",
            )
            self.loaders[(policy, workers)] = (loader, sampler)
        return self.loaders[(policy, workers)]

    def _decode_workers(self, piece_bytes: int) -> int:
        """The configured decode workers, or as many as this shard's pieces fit in /dev/shm
        (0: decode in this process)."""
        workers = self.settings.decode_workers
        if piece_bytes == 0:
            return workers
        fit = workers_that_fit(workers, workers_footprint(1, piece_bytes), self.shm_bytes)
        if fit < workers and not self.warned_shm:
            self.warned_shm = True
            need = workers_footprint(workers, piece_bytes)
            processes = processes_on_this_machine()
            held = f"/dev/shm holds {self.shm_bytes >> 20} MiB" + (
                f" per scoring process ({processes} on this machine)" if processes > 1 else ""
            )
            print(
                f"warning: {held} but {workers} decode "
                f"workers need about {need >> 20} MiB for these images, so "
                + (f"only {fit} decode" if fit else "the model's process decodes them")
                + " (slower). Give the machine or container more shared memory (docker run "
                "--shm-size=2g, or --ipc=host), or set [score] decode_workers lower.",
                file=sys.stderr,
            )
        return fit

    def batch_size(self, scorer: Scorer) -> int:
        """--batch-size if set, else the metric's declared batch for this device."""
        return self.settings.batch_size or scorer.spec.batch_size(scorer.device.type)

    def decode_batch_size(self, scorers: list[Scorer]) -> int:
        """Images decoded together for metrics that share a decode: the largest of their
        batches, each metric then runs its own batch size over them (`_BatchQueue`). The
        smallest would hold every metric to the batch of the slowest to batch (on CPU, NIQE
        and MANIQA at 1 kept CLIP-IQA at 1 too)."""
        return max(self.batch_size(s) for s in scorers)

    def process(self, items: pa.Table) -> pa.Table:
        with self.times.part(TOTAL):
            rows = items.to_pylist()
            out: list[dict[str, Any]] = []
            for policy, scorers in self.groups:
                names = {s.name for s in scorers}
                todo = [r for r in rows if names & set(r["missing"])]
                todo = self._within_budget(todo, scorers, out)
                shared, alone = self._split_for_workers(policy, todo)
                if shared:
                    self._score_group(policy, scorers, shared, out)
                if alone:  # each too large for a worker's buffers: decoded in this process
                    self._score_group(policy, scorers, alone, out, workers=0)
            return pa.Table.from_pylist(out, schema=RESULT_SCHEMA)

    def _within_budget(self, todo: list[dict], scorers: list[Scorer], out: list[dict]
                       ) -> list[dict]:
        """Rows whose declared size fits [decode] max_pixels, each missing only the metrics
        whose memory estimate fits [decode] image_memory_mb; the rest get `too_large` rows
        here, before anything is decoded (sizes unknown to the catalog are checked by the
        decode itself)."""
        kept = []
        for row in todo:
            width, height = row["width"] or 0, row["height"] or 0
            refused: dict[str, str] = {}
            for scorer in (s for s in scorers if s.name in row["missing"]):
                if width * height > self.settings.max_pixels:
                    refused[scorer.name] = TooLarge(width, height, self.settings.max_pixels).detail
                    continue
                over = self._over_memory(scorer, width, height, row["exif_orientation"])
                if over:
                    refused[scorer.name] = f"{width}x{height} needs {over}"
            out.extend(_row(row, s, None, TooLarge.reason, refused[s.name])
                       for s in scorers if s.name in refused)
            missing = [m for m in row["missing"] if m not in refused]
            if {s.name for s in scorers} & set(missing):
                kept.append(dict(row, missing=missing))
        return kept

    def _over_memory(self, scorer: Scorer, width: int, height: int, orientation: int | None
                     ) -> str:
        """What exceeds which budget for one image in one metric ("" when it fits): the host
        holds its decode, plus the working set where the metric runs on the CPU; a GPU holds
        the working set, up to half of the device's memory (batches that do not fit it are
        retried image by image)."""
        host = decode_bytes(width, height)
        working = scorer.spec.working_memory(width, height, orientation)
        limit_mb = self.settings.image_memory_mb
        if scorer.device.type == "cuda":
            device = torch.cuda.get_device_properties(scorer.device).total_memory // 2
            if working > device:
                return (f"about {working / 2**30:.1f} GiB of GPU memory in {scorer.name} > half "
                        f"of the device's {2 * device / 2**30:.0f} GiB")
        else:
            host += working
        if host > limit_mb << 20:
            return (f"about {host / 2**30:.1f} GiB in {scorer.name} > [decode] image_memory_mb "
                    f"{limit_mb}")
        return ""

    def _split_for_workers(self, policy: InputPolicy, todo: list[dict]
                           ) -> tuple[list[dict], list[dict]]:
        """(rows for the decode workers, rows decoded in this process, `fits_a_worker`)."""
        shared, alone = [], []
        for row in todo:
            height, width = policy.output_hw(
                row["width"] or 0, row["height"] or 0, row["exif_orientation"]
            )
            fits = not self.settings.decode_workers or fits_a_worker(3 * height * width)
            (shared if fits else alone).append(row)
        return shared, alone

    def _score_group(
        self,
        policy: InputPolicy,
        scorers: list[Scorer],
        todo: list[dict],
        out: list[dict],
        workers: int | None = None,
    ) -> None:
        """Scores `todo` with the scorers that share this decode policy, appending rows to out;
        `workers`: decode processes (None: the configured ones that this shard's pieces fit)."""
        part = self.times.part
        shapes = [
            policy.output_hw(r["width"] or 0, r["height"] or 0, r["exif_orientation"])
            for r in todo
        ]
        cell = max(s.spec.batch_cell for s in scorers)
        batches = size_buckets(shapes, self.decode_batch_size(scorers), cell)
        if workers is None:
            plan = plan_pieces(batches, self.settings.decode_workers)
            workers = self._decode_workers(largest_piece_bytes(plan, shapes))
        plan = plan_pieces(batches, workers)
        loader, sampler = self._loader(policy, workers)
        sampler.batches = [[(i, todo[i]["path"]) for i in p] for b in plan for p in b]
        with part(DECODE_WAIT):
            decoded_pieces = iter(loader)
        device = scorers[0].device
        queues = [_BatchQueue(s, self.batch_size(s)) for s in scorers]
        previous: list[_Launched] = []
        for count in (len(b) for b in plan):
            with part(DECODE_WAIT):
                pieces = [next(decoded_pieces) for _ in range(count)]
            decoded = _Decoded.join(pieces, device)
            launched: list[_Launched] = []
            launch = partial(_launch, todo=todo, out=out, launched=launched)
            _record_failures(decoded, todo, scorers, out)
            with part(LAUNCH):
                for indices, stacked in decoded.groups:
                    for queue in queues:
                        _enqueue(queue, indices, stacked, todo, out, launch)
            # Launching converted the images to float (the model's own copy; a CPU forward has
            # even finished), and what waits is copied, so the workers may reuse their buffers.
            for piece in pieces:
                self.returned.hand_back(piece.flag)
            # Read the previous batch only now: this batch is already queued behind it.
            with part(RESULT_WAIT):
                _read_launched(previous, todo, out)
            previous = launched
        last: list[_Launched] = []
        with part(LAUNCH):
            for queue in queues:
                queue.flush(partial(_launch, todo=todo, out=out, launched=last))
        with part(RESULT_WAIT):
            _read_launched(previous, todo, out)
            _read_launched(last, todo, out)
        with part(DECODE_WAIT):
            for _ in decoded_pieces:  # ends the epoch cleanly for the persistent workers
                pass


def _record_failures(
    decoded: _Decoded, todo: list[dict], scorers: list[Scorer], out: list[dict]
) -> None:
    for index, reason, detail in decoded.failures:
        for s in scorers:
            if s.name in todo[index]["missing"]:
                out.append(_row(todo[index], s, None, reason, detail))


def _enqueue(
    queue: _BatchQueue,
    indices: list[int],
    stacked: torch.Tensor,
    todo: list[dict],
    out: list[dict],
    launch: Launch,
) -> None:
    """The images of one decoded shape that still lack the queue's metric, into its queue."""
    scorer = queue.scorer
    wanted = [k for k, i in enumerate(indices) if scorer.name in todo[i]["missing"]]
    if not wanted:
        return
    need = scorer.input_policy.min_side
    if min(stacked.shape[2:]) < need:
        detail = f"{stacked.shape[3]}x{stacked.shape[2]} < {need}px side"
        out.extend(_row(todo[indices[k]], scorer, None, "too_small", detail) for k in wanted)
        return
    queue.add([indices[k] for k in wanted], _rows(stacked, wanted), launch)


def _rows(stacked: torch.Tensor, rows: list[int]) -> torch.Tensor:
    """stacked[rows], as a view (no copy) when the rows are consecutive."""
    if rows == list(range(rows[0], rows[-1] + 1)):
        return stacked[rows[0] : rows[-1] + 1]
    return stacked[rows]


def _launch(
    scorer: Scorer,
    indices: list[int],
    batch: torch.Tensor,
    todo: list[dict],
    out: list[dict],
    launched: list[_Launched],
    prepared: bool = False,
) -> None:
    """Queues the batch's forward pass; a batch that fails is retried image by image.
    `prepared`: the batch holds the model's prepared inputs (`Scorer.prepare`), one per image."""
    if not scorer.spec.batchable and len(indices) > 1:
        for k, index in enumerate(indices):
            _launch(scorer, [index], batch[k : k + 1], todo, out, launched, prepared)
        return
    try:
        launched.append(_Launched(scorer, indices, scorer.launch(batch, prepared)))
    except Exception as exc:
        if len(indices) > 1:  # find the one image that breaks the batch
            for k, index in enumerate(indices):
                _launch(scorer, [index], batch[k : k + 1], todo, out, launched, prepared)
            return
        out.append(_failed(todo[indices[0]], scorer, exc))


def _read_launched(launched: list[_Launched], todo: list[dict], out: list[dict]) -> None:
    for item in launched:
        try:
            values = item.scorer.read(item.output)
        except Exception as exc:  # an error the device reports only when the result is read
            # (its batch is recorded as failed: no score row is written, so a re-run retries it)
            out.extend(_failed(todo[i], item.scorer, exc) for i in item.indices)
            continue
        for index, value in zip(item.indices, values, strict=True):
            if math.isfinite(value):
                out.append(_row(todo[index], item.scorer, value, "", ""))
            else:
                out.append(_row(todo[index], item.scorer, None, "non_finite", f"value {value}"))


def _failed(item: dict, scorer: Scorer, exc: Exception) -> dict:
    return _row(item, scorer, None, "score_failed", f"{type(exc).__name__}: {exc}"[:500])


def _row(item: dict, scorer: Scorer, value: float | None, reason: str, detail: str) -> dict:
    return {
        "image_id": item["image_id"],
        "metric": scorer.name,
        "value": value,
        "version": scorer.version,
        "status": "ok" if value is not None else "error",
        "reason": reason or None,
        "detail": detail or None,
    }


def job_name(versions: dict[str, str]) -> str:
    """One results folder per (metrics, versions): result files of other jobs never mix in."""
    digest = hashlib.sha256(json.dumps(versions, sort_keys=True).encode()).hexdigest()[:12]
    return f"score-{digest}"


def settings_per_process(settings: ScoreSettings, workers: int, engine: str) -> ScoreSettings:
    """Several model processes decode in-process and split the cores instead of each starting
    decode workers. Not Ray's GPU actors: each feeds its own GPU, which one in-process decoder
    cannot keep busy; they keep their decode workers, with /dev/shm divided per node
    (runner_ray.ShardActor)."""
    if workers <= 1 or (engine == "ray" and on_gpu(settings.device)):
        return settings
    cores = os.cpu_count() or 1
    return dataclasses.replace(
        settings, decode_workers=0, threads=settings.threads or max(1, cores // workers)
    )


def versions_from_the_cluster(settings: ScoreSettings, engine: str) -> bool:
    """--engine ray --device cuda from a machine without a GPU (a Ray head node): versions name
    the GPU's half precision (bf16 or fp16), so a task on a GPU of the cluster computes them."""
    return engine == "ray" and on_gpu(settings.device) and not torch.cuda.is_available()


def job_versions(settings: ScoreSettings, engine: str) -> dict[str, str]:
    """metric -> version, computed where the job's scorers run (checks weights there)."""
    if versions_from_the_cluster(settings, engine):
        from hfaid_core.runner_ray import run_on_a_slot

        return run_on_a_slot(metric_versions, settings, gpu=True)
    return metric_versions(settings)


def build_job(
    catalog: Catalog,
    settings: ScoreSettings,
    stage: str | None,
    run_id: int,
    shard_size: int,
    workers: int,
    engine: str = "local",
) -> tuple[ShardJob, dict[str, str]]:
    if not settings.metrics:
        raise HfaidError("--metrics: name at least one metric")
    versions = job_versions(settings, engine)
    checked = dataclasses.replace(settings, versions=versions)  # workers compare theirs to these
    settings = settings_per_process(checked, workers, engine)
    job = ShardJob(
        name=job_name(versions),
        work_dir=catalog.work_dir,
        pending=partial(pending_scores, catalog, stage, versions, batch_cell(settings)),
        worker_factory=partial(ScoreWorker, settings),
        merge=partial(merge_score_results, catalog, run_id=run_id),
        shard_size=shard_size,
        workers=max(1, workers),
        description="score " + ",".join(settings.metrics),
        run_id=run_id,
    )
    return job, versions


def run_scoring(
    catalog: Catalog,
    settings: ScoreSettings,
    stage: str | None,
    run_id: int,
    shard_size: int = 256,
    workers: int = 1,
    engine: str = "local",
    ray_address: str | None = None,
) -> tuple[JobStats, dict[str, str]]:
    """Score every image that passed `stage` and lacks a requested metric@version."""
    if engine == "ray":
        from hfaid_core.runner_ray import ray_connection, run_job_ray

        # Connected first only when the cluster computes the versions: one connection for them
        # and the job. Otherwise Ray starts only if images are pending.
        cluster = versions_from_the_cluster(settings, engine)
        with ray_connection(ray_address) if cluster else nullcontext():
            job, versions = build_job(catalog, settings, stage, run_id, shard_size, workers, engine)
            stats = run_job_ray(job, device=settings.device, actors=workers, address=ray_address)
        return stats, versions
    job, versions = build_job(catalog, settings, stage, run_id, shard_size, workers, engine)
    if engine != "local":
        raise HfaidError(f"--engine {engine!r}: use local or ray")
    return run_job(job), versions


def scores_for_paths(paths: list[Path], settings: ScoreSettings) -> pa.Table:
    """Score files directly (benchmarks, ad-hoc use): the worker without the catalog."""
    return ScoreWorker(settings).process(path_items(paths, settings.metrics))


def path_items(paths: list[Path], metrics: tuple[str, ...]) -> pa.Table:
    """The work items `ScoreWorker.process` takes, for files outside a catalog."""
    return pa.table(
        {
            "image_id": [str(p) for p in paths],
            "path": [str(p) for p in paths],
            "width": [_size(p)[0] for p in paths],
            "height": [_size(p)[1] for p in paths],
            "exif_orientation": pa.array([None] * len(paths), pa.int64()),
            "missing": [list(metrics)] * len(paths),
        }
    )


def _size(path: Path) -> tuple[int, int]:
    """Header size for bucketing; (0, 0) when unreadable: the decode then records the reason."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.size
    except Exception:  # bad files are the decode step's to report, per image
        return 0, 0
