"""Prepared review images: a fit-view JPEG (never enlarged) and 1:1 crops, cached on disk and
(bounded) in memory; the original for the loupe; why a file could not be shown."""

from __future__ import annotations

import io
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from db.errors import CatalogError
from hfaid_core.image_open import DEFAULT_MAX_PIXELS, open_image
from hfaid_core.settings.review import ReviewConfig

# Formats every browser decodes as-is: the loupe shows the original file's own pixels.
BROWSER_FORMATS = {
    "JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"
}


@dataclass(frozen=True)
class Preview:
    fit: bytes  # JPEG, longest side <= preview_max_side, never larger than the original
    crops: tuple[bytes, ...]  # JPEG 1:1 crops of the full-resolution image
    width: int  # full-resolution size after EXIF rotation
    height: int
    boxes: tuple[tuple[int, int, int, int], ...] = ()  # where each crop comes from

    @property
    def nbytes(self) -> int:
        return len(self.fit) + sum(len(c) for c in self.crops)


def failure(exc: BaseException) -> tuple[str, str]:
    """The outcome reason and one-line detail for a file that could not be opened or decoded:
    file_missing, file_unreadable, or the reason a decode guard names (an exception with a
    `reason` attribute, e.g. too_large)."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        return reason, text
    if isinstance(exc, FileNotFoundError | IsADirectoryError | NotADirectoryError):
        return "file_missing", text
    return "file_unreadable", text


class PreviewCache:
    """Previews built once per image (disk), kept in an LRU bounded by bytes (memory)."""

    def __init__(self, folder: Path, cfg: ReviewConfig, max_pixels: int = DEFAULT_MAX_PIXELS
                 ) -> None:
        self.folder = folder
        self.cfg = cfg
        self.max_pixels = max_pixels  # [decode]: a larger image raises TooLarge, undecoded
        self.max_bytes = cfg.memory_cache_mb * 1024 * 1024
        self._memory: OrderedDict[str, Preview] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._building: dict[str, threading.Event] = {}  # image_id -> set when its build ends

    def get(self, image_id: str, path: str) -> Preview:
        with self._lock:
            hit = self._memory.get(image_id)
            if hit is not None:
                self._memory.move_to_end(image_id)
                return hit
            building = self._building.get(image_id)
            if building is None:
                self._building[image_id] = done = threading.Event()
        if building is not None:  # another thread (the prefetcher) is on it: wait, then read
            building.wait()
            return self.get(image_id, path)
        try:
            preview = self._load(image_id) or self._build(image_id, path)
            with self._lock:
                if image_id not in self._memory and preview.nbytes <= self.max_bytes:
                    self._memory[image_id] = preview
                    self._bytes += preview.nbytes
                    while self._bytes > self.max_bytes:
                        _, old = self._memory.popitem(last=False)
                        self._bytes -= old.nbytes
        finally:
            with self._lock:
                del self._building[image_id]
            done.set()
        return preview

    def has(self, image_id: str) -> bool:
        """Whether the preview is in memory or on disk already (size.txt is written last)."""
        with self._lock:
            if image_id in self._memory:
                return True
        return self._dir(image_id).joinpath("size.txt").exists()

    def prepare(self, items: list[tuple[str, str]], workers: int = 2) -> int:
        """Build disk previews for (image_id, path) pairs lacking one; returns how many were
        built (a file that fails is left for the review server to record when it is leased)."""
        todo = [(i, p) for i, p in items if not self._dir(i).joinpath("size.txt").exists()]

        def build(item: tuple[str, str]) -> bool:
            try:
                self._build(*item)
            except Exception:  # noqa: BLE001 - any decode failure is recorded at review time
                return False
            return True

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            return sum(pool.map(build, todo))

    @property
    def memory_bytes(self) -> int:
        return self._bytes

    def _dir(self, image_id: str) -> Path:
        cfg = self.cfg
        size = f"v2-{cfg.preview_max_side}-{cfg.crop_size}-{cfg.crops}-{cfg.preview_quality}"
        return self.folder / size / image_id[:2] / image_id

    def _load(self, image_id: str) -> Preview | None:
        folder = self._dir(image_id)
        try:
            meta = [int(v) for v in (folder / "size.txt").read_text().split()]
            fit = (folder / "fit.jpg").read_bytes()
            crops = tuple((folder / f"crop{i}.jpg").read_bytes() for i in range(meta[2]))
        except (OSError, IndexError, ValueError):
            return None
        boxes = tuple(tuple(meta[3 + 4 * i : 7 + 4 * i]) for i in range(meta[2]))
        return Preview(fit, crops, meta[0], meta[1], boxes)

    def _build(self, image_id: str, path: str) -> Preview:
        """Open the file and build the fit view and crops (any error propagates: the caller
        records it as the image's outcome, see `failure`)."""
        with open_image(path, self.max_pixels) as opened:
            img = ImageOps.exif_transpose(opened).convert("RGB")
        width, height = img.size
        boxes = tuple(crop_boxes(img, self.cfg.crop_size, self.cfg.crops))
        crops = tuple(_jpeg(img.crop(box), self.cfg.preview_quality) for box in boxes)
        fit = img.copy()
        # thumbnail() only ever shrinks: a small image keeps its own size (true pixels).
        fit.thumbnail(
            (self.cfg.preview_max_side, self.cfg.preview_max_side), Image.Resampling.LANCZOS
        )
        preview = Preview(_jpeg(fit, self.cfg.preview_quality), crops, width, height, boxes)
        folder = self._dir(image_id)
        folder.mkdir(parents=True, exist_ok=True)
        meta = [width, height, len(crops), *(v for box in boxes for v in box)]
        files = {
            "fit.jpg": preview.fit,
            **{f"crop{i}.jpg": c for i, c in enumerate(crops)},
            "size.txt": " ".join(map(str, meta)).encode(),
        }
        for name, data in files.items():
            _write_atomic(folder / name, data)
        return preview

    def original(self, image_id: str, path: str, fmt: str | None) -> tuple[Path, str]:
        """The file the loupe shows at 100%/200%: the original itself when browsers decode its
        format (they apply EXIF orientation like the previews do), else a lossless PNG of it
        built once."""
        if fmt in BROWSER_FORMATS:
            if not Path(path).is_file():
                raise FileNotFoundError(f"no file at {path}")
            return Path(path), BROWSER_FORMATS[fmt]
        png = self._dir(image_id) / "original.png"
        if not png.exists():
            with Image.open(path) as opened:
                img = ImageOps.exif_transpose(opened).convert("RGB")
            buf = io.BytesIO()
            img.save(buf, format="PNG", compress_level=1)
            png.parent.mkdir(parents=True, exist_ok=True)
            _write_atomic(png, buf.getvalue())
        return png, "image/png"


class Prefetcher:
    """Builds the previews of the images the queue hands out next in one background thread, so a
    click rarely waits for a build (about 100 ms for a 3 MP photo on the 2-core machine, 350 ms
    for 12 MP; `hfaid review --prepare` builds them all before serving instead)."""

    def __init__(
        self,
        cache: PreviewCache,
        upcoming: Callable[[], list[tuple[str, str]]],
        min_interval_s: float = 0.5,
    ) -> None:
        self.cache, self._upcoming, self.min_interval_s = cache, upcoming, min_interval_s
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def poke(self) -> None:
        """An image was handed out: top up the ones ahead (at most every `min_interval_s`)."""
        self._wake.set()
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, daemon=True, name="hfaid-preview-prefetch"
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            try:
                items = self._upcoming()
            except CatalogError:  # locked by another process: the next poke tries again
                items = []
            for image_id, path in items:
                if self.cache.has(image_id):
                    continue
                try:
                    self.cache.get(image_id, path)
                except Exception:  # best effort: the click path builds it again and reports errors
                    continue
            time.sleep(self.min_interval_s)


def crop_boxes(img: Image.Image, size: int, count: int) -> list[tuple[int, int, int, int]]:
    """The centre crop plus the most detailed tiles (by gradient energy), full resolution."""
    width, height = img.size
    size = min(size, width, height)
    cx, cy = (width - size) // 2, (height - size) // 2
    boxes = [(cx, cy, cx + size, cy + size)]
    if count <= 1:
        return boxes
    gray = np.asarray(img.convert("L"), dtype=np.float32)
    energy = np.abs(np.diff(gray, axis=0))[:, :-1] + np.abs(np.diff(gray, axis=1))[:-1, :]
    tiles = []
    for y in range(0, height - size + 1, size):
        for x in range(0, width - size + 1, size):
            tiles.append((float(energy[y : y + size - 1, x : x + size - 1].mean()), x, y))
    for _, x, y in sorted(tiles, reverse=True):
        box = (x, y, x + size, y + size)
        overlaps_centre = abs(x - cx) < size // 2 and abs(y - cy) < size // 2
        if box not in boxes and not overlaps_centre:
            boxes.append(box)
        if len(boxes) >= count:
            break
    return boxes


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    # 4:4:4: chroma at full resolution, so colour fringes in a crop are the image's own.
    img.save(buf, format="JPEG", quality=quality, subsampling=0)
    return buf.getvalue()


def _write_atomic(path: Path, data: bytes) -> None:
    # Temp name then rename: sessions building one preview never see half a file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
