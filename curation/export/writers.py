"""Byte-reproducible writers: WebDataset tar shards (temp name, then rename) and an imagefolder."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import tarfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curation.export.samples import Sample

SHARD_PATTERN = "shard-{:06d}.tar"
TMP_SUFFIX = ".tmp"
# Fixed header fields so the same samples always give the same bytes.
MTIME, MODE = 0, 0o644


def member_name(key: str, suffix: str) -> str:
    """`{key}.{suffix}` after refusing anything that could escape the shard or folder."""
    name = f"{key}.{suffix}"
    if name.startswith("/") or ".." in name.split("/") or "\\" in name or "/.." in name:
        raise ValueError(f"unsafe member name {name!r}")
    return name


class _HashingFile:
    """A write-only file that hashes what passes through it (no second read of the shard).

    Writing and hashing run in a helper thread (both release the GIL), so they overlap with
    the producer building the next sample's headers.
    """

    def __init__(self, path: Path) -> None:
        self._f = open(path, "wb")  # noqa: SIM115 - closed in close()
        self.sha = hashlib.sha256()
        self.size = 0
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=64)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while (b := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self.sha.update(b)
                    self._f.write(b)
                except BaseException as exc:  # noqa: BLE001 - re-raised by close()
                    self._error = exc

    def write(self, b: bytes) -> int:
        self.size += len(b)
        self._queue.put(b)
        return len(b)

    def tell(self) -> int:
        return self.size

    def close(self) -> None:
        if self._f.closed:
            return
        self._queue.put(None)
        self._thread.join()
        self._f.flush()
        os.fsync(self._f.fileno())  # renamed only once its bytes are on disk
        self._f.close()
        if self._error is not None:
            raise self._error


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, MTIME, MODE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def tar_size(sample: Sample) -> int:
    """Bytes a sample takes in a tar: a 512-byte header per file plus 512-byte blocks."""
    return sum(512 + -(-len(data) // 512) * 512 for _, data in sample.files)


@dataclass
class ShardRecord:
    name: str
    sha256: str
    bytes: int
    keys: list[str] = field(default_factory=list)


def finished_shards(out: Path) -> list[ShardRecord]:
    """Shards an interrupted run already renamed into place, in order; a damaged one (and
    everything after it) is removed so the run rewrites it."""
    found: list[ShardRecord] = []
    index = 0
    while (path := out / SHARD_PATTERN.format(index)).exists():
        try:
            with tarfile.open(path) as tar:
                keys = list(dict.fromkeys(m.name.split(".", 1)[0] for m in tar.getmembers()))
            data = path.read_bytes()
        except (tarfile.TarError, OSError):
            break
        found.append(ShardRecord(path.name, hashlib.sha256(data).hexdigest(), len(data), keys))
        index += 1
    for stale in sorted(out.glob("shard-*.tar")):
        if stale.name not in {r.name for r in found}:
            stale.unlink()
    return found


def write_shards(out: Path, samples: Iterable[Sample], maxcount: int, maxsize: int,
                 start_index: int, on_sample=None) -> Iterator[ShardRecord]:
    """Group samples into tars of at most maxcount samples / maxsize bytes; yield each shard
    once it is renamed to its final name (a killed run leaves only `.tmp` files partial)."""
    index, raw, rec, used = start_index, None, ShardRecord("", "", 0), 0
    try:
        for sample in samples:
            if on_sample is not None:
                on_sample(sample)
            if sample.skip_reason:
                continue
            size = tar_size(sample)
            if raw is not None and (len(rec.keys) >= maxcount or used + size > maxsize):
                yield _close(out, raw, rec)
                raw, index = None, index + 1
            if raw is None:
                rec = ShardRecord(SHARD_PATTERN.format(index), "", 0)
                raw, used = _HashingFile(out / (rec.name + TMP_SUFFIX)), 0
            for suffix, data in sample.files:
                # what tarfile.addfile writes, without its copy through a file object
                raw.write(_tarinfo(member_name(sample.key, suffix), len(data)).tobuf(
                    tarfile.USTAR_FORMAT, "utf-8", "surrogateescape"))
                raw.write(data)
                if len(data) % tarfile.BLOCKSIZE:
                    raw.write(tarfile.NUL * (tarfile.BLOCKSIZE - len(data) % tarfile.BLOCKSIZE))
            rec.keys.append(sample.key)
            used += size
        if raw is not None:
            yield _close(out, raw, rec)
            raw = None
    finally:
        if raw is not None:  # an error mid-shard: leave no half-written shard behind
            raw.close()
            (out / (rec.name + TMP_SUFFIX)).unlink(missing_ok=True)


def _close(out: Path, raw: _HashingFile, rec: ShardRecord) -> ShardRecord:
    # tarfile's end of archive: two zero blocks, then zeros up to a whole 10240-byte record
    raw.write(tarfile.NUL * (2 * tarfile.BLOCKSIZE))
    if raw.size % tarfile.RECORDSIZE:
        raw.write(tarfile.NUL * (tarfile.RECORDSIZE - raw.size % tarfile.RECORDSIZE))
    raw.close()
    rec.sha256, rec.bytes = raw.sha.hexdigest(), raw.size
    os.replace(out / (rec.name + TMP_SUFFIX), out / rec.name)
    return rec


def write_file(path: Path, data: bytes) -> str:
    """Write bytes under a temp name, then rename; returns their sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return hashlib.sha256(data).hexdigest()


def write_imagefolder(out: Path, samples: Iterable[Sample], on_sample=None
                      ) -> tuple[list[dict[str, Any]], list[str]]:
    """Images (and `lr/` images) plus metadata.jsonl with `file_name` (Hugging Face ImageFolder);
    returns the file records (name, sha256, bytes) and the keys written."""
    files: list[dict[str, Any]] = []
    keys: list[str] = []
    lines: list[str] = []
    for sample in samples:
        if on_sample is not None:
            on_sample(sample)
        if sample.skip_reason:
            continue
        parts = dict(sample.files)
        row: dict[str, Any] = {"file_name": sample.image_name}
        files.append(_rec(out, sample.image_name, parts[sample.image_name.split(".", 1)[1]]))
        if "lr.png" in parts:
            lr_name = member_name(f"lr/{sample.key}", "png")
            files.append(_rec(out, lr_name, parts["lr.png"]))
            row["lr_file_name"] = lr_name
        row["text"] = parts["txt"].decode()
        row.update(json.loads(parts["json"]))
        lines.append(json.dumps(row, sort_keys=True, ensure_ascii=False))
        keys.append(sample.key)
    body = ("\n".join(lines) + "\n" if lines else "").encode()
    files.append(_rec(out, "metadata.jsonl", body))
    return files, keys


def _rec(out: Path, name: str, data: bytes) -> dict[str, Any]:
    member_name(name.rsplit(".", 1)[0], name.rsplit(".", 1)[1])
    return {"name": name, "sha256": write_file(out / name, data), "bytes": len(data)}
