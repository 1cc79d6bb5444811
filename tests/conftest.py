"""Shared fixtures: a fresh catalog file, the CLI run in-process, tiny real-photo pools."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from curation.demo.photos import colour_photos
from db.catalog import Catalog
from db.migrate import migrate


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    """An empty, fully migrated catalog file in a temp folder."""
    cat = Catalog(tmp_path / "catalog.duckdb", lock_timeout_s=10)
    migrate(cat)
    return cat


@pytest.fixture(autouse=True)
def _keep_main_module():
    """Streamlit's AppTest leaves its temporary script as `__main__`; worker processes started
    with "spawn" re-run `__main__`, so a later in-process job would crash its pool."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


@pytest.fixture
def one_torch_thread(monkeypatch):
    """One thread here and in launched scripts: on a busy 2-core box, 2 threads spin-wait."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield
    torch.set_num_threads(before)


@pytest.fixture
def cli(capsys):
    """Run `hfaid ARGS...` in-process; returns (exit code, stdout, stderr)."""
    from hfaid.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def write_photo_pool(
    folder: Path, count: int, size: tuple[int, int] = (320, 240), quality: int = 90
) -> list[Path]:
    """`count` distinct JPEG crops of bundled real photographs."""
    folder.mkdir(parents=True, exist_ok=True)
    photos = [Image.open(p).convert("RGB") for p in colour_photos()]
    paths = []
    for i in range(count):
        base = photos[i % len(photos)]
        w, h = base.size
        step = i // len(photos)
        box = (step % 7 * 3, step // 7 * 3, w - (step % 5) * 4 - 1, h - (step % 3) * 4 - 1)
        img = base.crop(box).resize(size, Image.Resampling.BILINEAR)
        path = folder / f"img_{i:05d}.jpg"
        img.save(path, quality=quality)
        paths.append(path)
    return paths


@pytest.fixture
def photo_pool(tmp_path: Path) -> Path:
    """A folder of 24 small real-photo JPEGs."""
    folder = tmp_path / "pool"
    write_photo_pool(folder, 24)
    return folder


def chromium_path() -> str | None:
    """Debian's chromium, required in CI (HFAID_REQUIRE_BROWSER=1), else tests skip."""
    path = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    if path is None and os.environ.get("HFAID_REQUIRE_BROWSER"):
        pytest.fail("chromium is required for browser tests (apt-get install chromium)")
    return path


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


def in_small_shm(command: str) -> list[str]:
    """The command in a private mount namespace whose /dev/shm is a 24 MB tmpfs, as in a
    container started without --shm-size."""
    mount = "mount -t tmpfs -o size=24m tmpfs /dev/shm"
    return ["unshare", "-m", "sh", "-c", f"{mount} && {command}"]


def skip_without_private_shm() -> None:
    if not shutil.which("unshare") or subprocess.run(in_small_shm("true")).returncode != 0:
        pytest.skip("needs unshare and mount (root in a mount namespace)")
