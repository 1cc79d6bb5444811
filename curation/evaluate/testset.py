"""The test set: HR centre crops, LR inputs by the Real-ESRGAN degradation, and its manifest."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from curation.ingest.scan import content_id
from hfaid_core.errors import HfaidError
from hfaid_core.image_open import DEFAULT_MAX_PIXELS, TooLarge, open_image
from hfaid_core.processes import die_with_parent
from hfaid_core.settings.degrade import DegradationConfig

MANIFEST = "manifest.json"
FORMAT = "hfaid-eval-set/1"
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
BUNDLED = "bundled"  # --hr bundled: real photos shipped inside installed packages
BUNDLED_COUNT = 8
_NOT_PHOTOS = {"ihc"}  # scikit-image's immunohistochemistry slide: a micrograph
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Protocol:
    """The paper's evaluation setting: HR 512x512, LR 128x128 (x4), one seed for the set."""

    hr_size: int = 512
    scale: int = 4
    seed: int = 0
    degradation: dict[str, Any] = field(default_factory=lambda: asdict(DegradationConfig()))

    @property
    def lr_size(self) -> int:
        return self.hr_size // self.scale

    def check(self) -> None:
        if self.scale < 1 or self.hr_size < 8 or self.hr_size % self.scale:
            raise HfaidError(f"--hr-size {self.hr_size} must be >= 8 and a multiple of "
                             f"--scale {self.scale}")


@dataclass(frozen=True)
class Source:
    """One HR image to crop: a file, or a member of an export's tar shard (`member`). `lr`
    names the export's own LR image (a path or a member): then it is cropped, not made."""

    name: str
    path: str
    member: str | None = None
    lr: str | None = None


@dataclass
class TestSet:
    folder: Path
    set_id: str
    protocol: dict[str, Any]
    images: list[dict[str, Any]]  # name, hr, lr (relative paths), hr_id, lr_id, source, ...
    skipped: list[dict[str, Any]]
    created: bool = False  # made by this call (False: an existing set, verified)

    def lr_path(self, name: str) -> Path:
        return self.folder / "lr" / f"{name}.png"

    def hr_path(self, name: str) -> Path:
        return self.folder / "hr" / f"{name}.png"

    @property
    def names(self) -> list[str]:
        return [image["name"] for image in self.images]


# ---- where HR images come from -------------------------------------------------------------

def bundled_photos(hr_size: int = 512) -> list[Path]:
    """The first 8 real photographs shipped in installed packages (scikit-image, matplotlib,
    pyiqa) whose short side holds an HR crop."""
    from PIL import Image

    from curation.demo.photos import colour_photos

    found = []
    for path in colour_photos():
        if path.stem in _NOT_PHOTOS:
            continue
        with Image.open(path) as img:
            if min(img.size) >= hr_size:
                found.append(path)
    if len(found) < BUNDLED_COUNT:
        raise HfaidError(f"only {len(found)} bundled photos have a short side >= {hr_size}; "
                         "install scikit-image, matplotlib and pyiqa, or pass --hr FOLDER")
    return found[:BUNDLED_COUNT]


def folder_sources(hr: str | Path, hr_size: int = 512) -> list[Source]:
    """Image files of a folder (recursively, sorted), or the bundled photos."""
    if str(hr) == BUNDLED:
        return _named([(p, None, None) for p in bundled_photos(hr_size)])
    root = Path(hr)
    if not root.is_dir():
        raise HfaidError(f"--hr {hr} is not a folder of images (or `bundled`)")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())
    if not files:
        raise HfaidError(f"--hr {hr} holds no images ({', '.join(IMAGE_EXTS)})")
    return _named([(p, None, None) for p in files])


def export_sources(export: Path) -> list[Source]:
    """The HR images and LR pairs of an `hfaid export --pairs` folder (shards or imagefolder)."""
    export = Path(export)
    if (export / "metadata.jsonl").is_file():
        rows = [json.loads(line) for line in (export / "metadata.jsonl").read_text().splitlines()
                if line.strip()]
        found = [(export / r["file_name"], None, str(export / r["lr_file_name"]))
                 for r in rows if r.get("lr_file_name")]
        total = len(rows)
    else:
        found, total = [], 0
        for shard in sorted(export.glob("*.tar")):
            with tarfile.open(shard) as tar:
                members = {m.name for m in tar if m.isfile()}
            for name in sorted(members):
                key, _, ext = name.partition(".")
                if ext in ("jpg", "jpeg", "png", "webp"):
                    total += 1
                    if f"{key}.lr.png" in members:
                        found.append((shard, name, f"{key}.lr.png"))
    if not total:
        raise HfaidError(f"--export {export} holds no exported images (an `hfaid export` folder)")
    if not found:
        raise HfaidError(f"--export {export} has no LR pairs; export it with --pairs "
                         "(or pass its images as --hr FOLDER to degrade them here)")
    return _named(found)


def _named(items: list[tuple[Path, str | None, str | None]]) -> list[Source]:
    """Sources named by file stem (or sample key), made unique with -2, -3 in order."""
    seen: dict[str, int] = {}
    out = []
    for path, member, lr in items:
        stem = Path(member).name.partition(".")[0] if member else Path(path).stem
        base = _SAFE.sub("_", stem).strip("._") or "image"
        seen[base] = seen.get(base, 0) + 1
        name = base if seen[base] == 1 else f"{base}-{seen[base]}"
        out.append(Source(name, str(path), member, lr))
    return out


# ---- one pair ------------------------------------------------------------------------------

def _read(path: str, member: str | None) -> bytes:
    if member is None:
        return Path(path).read_bytes()
    with tarfile.open(path) as tar:
        handle = tar.extractfile(member)
        if handle is None:
            raise OSError(f"{member} is not a file in {path}")
        return handle.read()


def _decode(data: bytes, max_pixels: int) -> np.ndarray:
    from PIL import ImageOps

    with open_image(io.BytesIO(data), max_pixels) as img:
        return np.asarray(ImageOps.exif_transpose(img).convert("RGB"))


def png_bytes(rgb: np.ndarray) -> bytes:
    """A deterministic PNG of an RGB array (OpenCV, as export writes its LR images)."""
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - OpenCV only fails on empty images
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def pixel_seed(rgb: np.ndarray) -> int:
    """The per-image part of the degradation seed: the HR crop's pixels, so a renamed or
    reordered file keeps its LR image."""
    return int.from_bytes(hashlib.sha256(rgb.tobytes()).digest()[:8], "big")


def make_pair(source: Source, protocol: Protocol,
              max_pixels: int = DEFAULT_MAX_PIXELS) -> dict[str, Any]:
    """HR centre crop and its LR (made, or cropped from the export's pair); per-image
    problems come back as {"name", "source", "reason", "detail"}, never raised."""
    from curation.degrade.realesrgan import degrade

    where = f"{source.path}:{source.member}" if source.member else source.path
    size, scale = protocol.hr_size, protocol.scale
    try:
        data = _read(source.path, source.member)
        rgb = _decode(data, max_pixels)
    except TooLarge as exc:  # the [decode] budget, checked before any pixel is decoded
        return {"name": source.name, "source": where, "reason": exc.reason, "detail": exc.detail}
    except Exception as exc:  # noqa: BLE001 - one bad file is a skip with its reason
        return {"name": source.name, "source": where, "reason": "decode_failed",
                "detail": f"{type(exc).__name__}: {exc}"}
    h, w = rgb.shape[:2]
    if min(h, w) < size:
        return {"name": source.name, "source": where, "reason": "too_small",
                "detail": f"{w}x{h} < {size}px side"}
    # Offsets on the LR grid, so an export's LR pair crops to exactly the same content.
    left, top = (w - size) // 2 // scale * scale, (h - size) // 2 // scale * scale
    hr = np.ascontiguousarray(rgb[top:top + size, left:left + size])
    params: dict[str, Any] | None = None
    if source.lr is not None:
        try:
            lr_full = _decode(_read(source.path if source.member else source.lr,
                                    source.lr if source.member else None), max_pixels)
        except Exception as exc:  # noqa: BLE001
            return {"name": source.name, "source": where, "reason": "lr_decode_failed",
                    "detail": f"{type(exc).__name__}: {exc}"}
        if lr_full.shape[:2] != (h // scale, w // scale):
            return {"name": source.name, "source": where, "reason": "lr_mismatch",
                    "detail": f"LR {lr_full.shape[1]}x{lr_full.shape[0]} is not "
                              f"{w // scale}x{h // scale} (x{scale})"}
        lr = lr_full[top // scale:(top + size) // scale, left // scale:(left + size) // scale]
    else:
        rng = np.random.default_rng([protocol.seed, pixel_seed(hr)])
        lr, params = degrade(hr, rng, scale, DegradationConfig(**protocol.degradation))
    hr_png, lr_png = png_bytes(hr), png_bytes(lr)
    return {"name": source.name, "source": where, "source_id": content_id(data),
            "crop": [left, top], "hr_png": hr_png, "lr_png": lr_png,
            "hr_id": content_id(hr_png), "lr_id": content_id(lr_png), "degradation": params}


# ---- the set -------------------------------------------------------------------------------

def prepare_test_set(folder: Path, sources: list[Source] | None, protocol: Protocol,
                     origin: str = "", workers: int = 1,
                     max_pixels: int = DEFAULT_MAX_PIXELS) -> TestSet:
    """The test set in `folder`: made once (files, then the manifest last), then only read.

    Re-running with the same sources and protocol verifies the files and writes nothing; other
    sources or another protocol for an existing set is an error (a set is frozen)."""
    folder = Path(folder)
    manifest = folder / MANIFEST
    if manifest.is_file():
        existing = load_test_set(folder)
        if sources is not None:
            _same_request(existing, sources, protocol, origin)
        return existing
    if sources is None:
        raise HfaidError(f"no test set in {folder} ({MANIFEST} missing); make one with --hr "
                         "FOLDER (or --hr bundled) or --export DIR")
    protocol.check()
    if folder.exists() and any(p.name not in ("hr", "lr") for p in folder.iterdir()):
        raise HfaidError(f"--test-set {folder} is not empty and holds no {MANIFEST}; "
                         "use a new folder")
    pairs = _make_pairs(sources, protocol, workers, max_pixels)
    made = [p for p in pairs if "hr_png" in p]
    skipped = [p for p in pairs if "hr_png" not in p]
    if not made:
        first = pairs[0] if pairs else {"reason": "none", "detail": ""}
        raise HfaidError(f"no test image could be made: e.g. {first.get('source', '')} "
                         f"{first['reason']} ({first['detail']})")
    for sub in ("hr", "lr"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    images = []
    for pair in made:
        _write(folder / "hr" / f"{pair['name']}.png", pair.pop("hr_png"))
        _write(folder / "lr" / f"{pair['name']}.png", pair.pop("lr_png"))
        images.append({"hr": f"hr/{pair['name']}.png", "lr": f"lr/{pair['name']}.png", **pair})
    body = {"format": FORMAT, "origin": origin, "protocol": asdict(protocol),
            "sources": [s.name for s in sources], "images": images, "skipped": skipped}
    body["set_id"] = set_fingerprint(body)
    _write(manifest, (json.dumps(body, indent=2, sort_keys=True) + "\n").encode())
    return TestSet(folder, body["set_id"], body["protocol"], images, skipped, created=True)


def set_fingerprint(body: dict[str, Any]) -> str:
    """What the set is: its protocol and every image's name and content (not where it is)."""
    core = {"protocol": body["protocol"],
            "images": [(i["name"], i["hr_id"], i["lr_id"]) for i in body["images"]]}
    return hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()[:16]


def load_test_set(folder: Path, verify: bool = True) -> TestSet:
    """Read a set's manifest; with `verify`, every HR and LR file must still hold its bytes."""
    folder = Path(folder)
    try:
        body = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise HfaidError(f"{folder / MANIFEST} cannot be read: {exc}") from None
    if body.get("format") != FORMAT:
        raise HfaidError(f"{folder / MANIFEST} is not an hfaid test set ({FORMAT})")
    if verify:
        for image in body["images"]:
            for part in ("hr", "lr"):
                path = folder / image[part]
                if not path.is_file() or content_id(path.read_bytes()) != image[f"{part}_id"]:
                    raise HfaidError(f"test set file {path} is missing or changed since the set "
                                     "was made; restore it or make the set again in a new folder")
    return TestSet(folder, body["set_id"], body["protocol"], body["images"], body["skipped"])


def _same_request(existing: TestSet, sources: list[Source], protocol: Protocol,
                  origin: str) -> None:
    body = json.loads((existing.folder / MANIFEST).read_text())
    if existing.protocol != asdict(protocol):
        changed = sorted(k for k, v in asdict(protocol).items() if existing.protocol.get(k) != v)
        raise HfaidError(f"test set {existing.folder} was made with other settings "
                         f"({', '.join(changed)}); a set is frozen: use a new --test-set folder")
    names = [s.name for s in sources]
    if body.get("sources") != names:
        added = len(set(names) - set(body.get("sources", [])))
        gone = len(set(body.get("sources", [])) - set(names))
        raise HfaidError(f"test set {existing.folder} was made from {body.get('origin')!r}; "
                         f"{origin!r} has {added} new and {gone} missing images: a set is frozen,"
                         " use a new --test-set folder")


def _make_pairs(sources: list[Source], protocol: Protocol, workers: int,
                max_pixels: int) -> list[dict]:
    if workers <= 1 or len(sources) < 4:
        return [make_pair(s, protocol, max_pixels) for s in sources]
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                             initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
        return list(pool.map(make_pair, sources, [protocol] * len(sources),
                             [max_pixels] * len(sources), chunksize=4))


def _write(path: Path, data: bytes) -> None:
    """Write through a temp name (a killed run leaves no half file under the real name)."""
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
