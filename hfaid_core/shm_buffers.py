"""Shared-memory batch buffers that a decode worker reuses instead of a new segment per batch."""

from __future__ import annotations

import os
import shutil
from collections import OrderedDict

import torch
from torch.utils.data import get_worker_info

# Byte 0 of each buffer is its "in use" flag: the worker sets it when it fills the buffer, the
# model's process clears it once nothing reads the images any more (after their batch is
# launched). The payload starts at HEADER bytes so that it stays 64-byte aligned.
HEADER = 64
# Buffers a worker keeps: its prefetched pieces (the DataLoader's prefetch_factor, 4) plus one or
# two that the model's process has not handed back yet. More in use at once get fresh segments.
MAX_POOLED = 6
MAX_POOLED_BYTES = 768 << 20  # per worker: pieces of 4 images of 12 MP still pool 4 buffers
GROWTH = 5 / 4  # a new buffer has room for slightly larger pieces of the next shape


class SharedBuffers:
    """One decode worker's buffers: a new shared segment costs ~1 ms to create and ~1 ms of
    page faults per 2.6 MB image to fill, about as much as decoding the JPEG itself."""

    def __init__(self) -> None:
        self.buffers: list[torch.Tensor] = []  # uint8 views of whole shared storages

    def take(self, nbytes: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(payload of nbytes, its one-byte flag), from a released buffer when one is big enough."""
        free = [b for b in self.buffers if b.numel() >= HEADER + nbytes and int(b[0]) == 0]
        if free:
            buffer = min(free, key=torch.Tensor.numel)
        else:
            size = HEADER + int(nbytes * GROWTH)
            buffer = torch.empty(0, dtype=torch.uint8).set_(torch.UntypedStorage._new_shared(size))
            self._keep(buffer)
        buffer[0] = 1
        return buffer[HEADER : HEADER + nbytes], buffer[:1]

    def _keep(self, buffer: torch.Tensor) -> None:
        """Pools a new buffer, dropping released ones (smallest first: the least likely to fit
        the next piece) to stay within MAX_POOLED and MAX_POOLED_BYTES."""
        released = sorted((b for b in self.buffers if int(b[0]) == 0), key=torch.Tensor.numel)
        while released and not self._room_for(buffer):
            smallest = released.pop(0)
            self.buffers = [b for b in self.buffers if b is not smallest]
        if self._room_for(buffer):
            self.buffers.append(buffer)

    def _room_for(self, buffer: torch.Tensor) -> bool:
        pooled = sum(b.numel() for b in self.buffers)
        return len(self.buffers) < MAX_POOLED and pooled + buffer.numel() <= MAX_POOLED_BYTES


_POOL: SharedBuffers | None = None


def batch_buffer(nbytes: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(uint8 payload, flag) to collate a batch into: pooled shared memory in a DataLoader
    worker (sent to the model's process without another copy), plain memory elsewhere."""
    global _POOL
    if get_worker_info() is None:
        return torch.empty(nbytes, dtype=torch.uint8), None
    if _POOL is None:
        _POOL = SharedBuffers()
    return _POOL.take(nbytes)


def workers_footprint(workers: int, piece_bytes: int) -> int:
    """Shared memory that decode workers may hold at once for pieces of this size: each its
    pooled buffers, which cover its prefetched pieces and those not yet handed back."""
    return workers * MAX_POOLED * (HEADER + int(piece_bytes * GROWTH))


def workers_that_fit(workers: int, per_worker_bytes: int, shm_bytes: int | None) -> int:
    """How many of `workers` DataLoader workers fit in 3/4 of /dev/shm (the rest for whoever
    else shares it), each holding `per_worker_bytes` at once; all of them where unknown.

    A worker that runs out of /dev/shm fails the whole job (the allocation fails, or the
    worker dies of SIGBUS when it touches the page), as under Docker's 64 MB default."""
    if workers <= 0 or shm_bytes is None or per_worker_bytes <= 0:
        return workers
    return min(workers, shm_bytes * 3 // 4 // per_worker_bytes)


def fits_a_worker(image_bytes: int) -> bool:
    """Whether a decode worker's pooled buffers can carry pieces of this one image (its
    MAX_POOLED pieces within MAX_POOLED_BYTES: up to ~35 MP of RGB each). A larger image is
    decoded where it is used: through workers it would take fresh segments for every piece, and
    one such image would shrink the decode workers of its whole shard (`workers_that_fit`)."""
    return HEADER + int(image_bytes * GROWTH) <= MAX_POOLED_BYTES // MAX_POOLED


def shared_memory_size() -> int | None:
    """Size of /dev/shm, where torch puts the tensors workers send; None where there is none."""
    try:
        return shutil.disk_usage("/dev/shm").total
    except OSError:
        return None


# How many processes of this machine fill /dev/shm at once, each with its own workers: set by
# the Ray engine's actors for their node, or by accelerate/torchrun for training processes.
PROCESSES_ENV = ("HFAID_NODE_PROCESSES", "LOCAL_WORLD_SIZE")


def processes_on_this_machine() -> int:
    for name in PROCESSES_ENV:
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


def shared_memory_share() -> int | None:
    """This process's share of /dev/shm: its size divided among the processes of this machine
    that fill it at once (each would otherwise plan with all of it); None where there is none."""
    total = shared_memory_size()
    return None if total is None else total // processes_on_this_machine()


class ReturnedBuffers:
    """The model's process side: hands buffers back to their workers and keeps the last few
    mapped, so that a buffer that comes back is neither mapped nor page-faulted again (torch
    finds a storage still alive in this process by its shared-memory name, which is how the
    decode workers send them: `score.share_buffers_by_name`). Copying 1080x800 images out, as
    the pin thread does, took ~0.77 ms per image from fresh mappings and ~0.48 ms from kept
    ones (2 workers, 2-core machine)."""

    def __init__(self, limit: int = 64) -> None:
        self.limit = limit
        self.mapped: OrderedDict[int, torch.UntypedStorage] = OrderedDict()

    def hand_back(self, flag: torch.Tensor | None) -> None:
        """Call once nothing reads the buffer's images any more (pinned, concatenated, or
        converted to float when their batch was launched)."""
        if flag is None:
            return
        flag.zero_()
        storage = flag.untyped_storage()
        self.mapped[storage.data_ptr()] = storage
        self.mapped.move_to_end(storage.data_ptr())
        while len(self.mapped) > self.limit:
            self.mapped.popitem(last=False)
