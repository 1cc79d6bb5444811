"""One pixel budget for every decode: header bombs and a 99.98 MP PNG among normal images, under an
address-space cap, in `hfaid score`, `hfaid export --resize` and the review preview (issue 26)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from curation.demo.photos import colour_photos
from curation.scoring.scorers import create_scorer
from curation.scoring.scorers import random_weights as rw
from curation.scoring.scorers.base import unit_float
from curation.scoring.scorers.classical import niqe_params, niqe_score, niqe_score_tiled
from db.catalog import Catalog
from tests.big_images import jpeg_header_only, photo_png, png_header_only
from tests.conftest import write_photo_pool

REPO = Path(__file__).resolve().parents[1]
GIB = 1 << 30
BIG = {"bomb.jpg": (65500, 65500), "bomb.png": (60000, 60000), "huge.png": (10000, 9998)}


@pytest.fixture(scope="module")
def big_pool(tmp_path_factory) -> Path:
    """4 normal photos, a 65500x65500 JPEG header, a 60000x60000 PNG header and a real
    10000x9998 (99.98 MP) PNG."""
    pool = tmp_path_factory.mktemp("big") / "pool"
    write_photo_pool(pool, 4, size=(320, 240))
    jpeg_header_only(pool / "bomb.jpg", *BIG["bomb.jpg"])
    png_header_only(pool / "bomb.png", *BIG["bomb.png"])
    photo_png(pool / "huge.png", *BIG["huge.png"])
    return pool


def _capped(argv: list[str], address_space: int, cwd: Path) -> tuple[int, int, str]:
    """(exit code, peak RSS bytes, stderr) of `argv` run under `prlimit --as`."""
    proc = subprocess.Popen(
        ["prlimit", f"--as={address_space}", *argv], cwd=cwd, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    _, status, usage = os.wait4(proc.pid, 0)
    return os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024, proc.stderr.read().decode()


def _torch_address_space() -> int:
    """Address space that importing torch maps before any work: its CUDA build maps ~3 GB of
    libraries even on a CPU-only machine. An address-space cap is sized on top of it, or it
    would measure those mappings instead of memory."""
    script = "import torch; print(open('/proc/self/status').read().split('VmPeak:')[1].split()[0])"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return int(out.stdout) * 1024


def _ingest(pool: Path, catalog: Path) -> None:
    subprocess.run([sys.executable, "-m", "hfaid", "ingest", str(pool), "--catalog", str(catalog),
                    "--workers", "1"], cwd=REPO, check=True, capture_output=True)


def _outcomes(catalog: Path, stage: str) -> dict[str, tuple[str, str, str]]:
    """file name -> (status, reason, detail) of each image's outcome at `stage`."""
    with Catalog(catalog).connect(read_only=True) as con:
        rows = con.execute(
            "SELECT p.path, o.status, o.reason, o.detail FROM stage_outcomes o "
            "JOIN paths p USING (image_id) WHERE o.stage = ?", [stage]
        ).fetchall()
    return {Path(p).name: (s, r, d) for p, s, r, d in rows}


@pytest.mark.slow
def test_score_finishes_under_a_memory_cap_with_bombs_and_a_100mp_png(big_pool, tmp_path):
    """The issue's case: one such header killed a whole scoring job (23 GB, 0 rows saved).
    Capped at 6 GiB beyond torch's own mappings, the job finishes in under 4 GiB of memory:
    the normal images are scored, the bombs are `too_large` before any pixel is decoded,
    NIQE scores the 99.98 MP PNG tile by tile and BRISQUE (whole-image statistics, ~7 GB)
    refuses it with the estimate."""
    catalog = tmp_path / "c.duckdb"
    _ingest(big_pool, catalog)
    cap = _torch_address_space() + 6 * GIB
    argv = [sys.executable, "-m", "hfaid", "score", "--metrics", "niqe,brisque", "--stage-input",
            "all", "--device", "cpu", "--catalog", str(catalog)]
    code, peak, err = _capped(argv, cap, tmp_path)
    assert code == 0, err[-2000:]
    assert peak < 4 * GIB, f"peak RSS {peak / GIB:.2f} GiB"
    outcomes = _outcomes(catalog, "score")
    normal = [n for n in outcomes if n.startswith("img_")]
    assert len(normal) == 4 and all(outcomes[n][0] == "pass" for n in normal)
    for name in ("bomb.jpg", "bomb.png"):
        status, reason, detail = outcomes[name]
        assert (status, reason) == ("error", "too_large") and "max_pixels" in detail, detail
    status, reason, detail = outcomes["huge.png"]
    assert reason == "too_large" and detail.startswith("brisque: 10000x9998 needs about")
    assert "niqe" not in detail
    with Catalog(catalog).connect(read_only=True) as con:
        counts = dict(con.execute("SELECT metric, count(*) FROM scores GROUP BY 1").fetchall())
    assert counts == {"niqe": 5, "brisque": 4}


@pytest.mark.slow
def test_export_resize_and_the_review_preview_under_6_gib(big_pool, tmp_path):
    """Export re-encoding and review previews had no limit: under a 6 GiB address-space cap
    (they import no torch), bombs are skipped/refused as `too_large` and the 99.98 MP PNG is
    resized and previewed."""
    catalog = tmp_path / "c.duckdb"
    _ingest(big_pool, catalog)
    out = tmp_path / "export"
    argv = [sys.executable, "-m", "hfaid", "export", "--out", str(out), "--status", "all",
            "--captions", "any", "--resize", "max:512", "--workers", "1", "--format",
            "imagefolder", "--catalog", str(catalog)]
    code, _, err = _capped(argv, 6 * GIB, tmp_path)
    assert code == 0, err[-2000:]
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    assert counts["exported"] == 5 and counts["skipped"] == {"too_large": 2}
    sizes = sorted(Image.open(p).size for p in out.rglob("*") if p.suffix in (".jpg", ".png"))
    assert sizes == [(320, 240)] * 4 + [(512, 512)]  # 10000x9998 -> longer side 512

    script = """
import json, sys
from pathlib import Path
from review_app.previews import PreviewCache
from hfaid_core.settings.review import ReviewConfig
cache = PreviewCache(Path(sys.argv[1]), ReviewConfig())
result = {}
for path in sys.argv[2:]:
    try:
        preview = cache.get(Path(path).stem, path)
        result[Path(path).name] = [preview.width, preview.height, len(preview.crops)]
    except Exception as exc:  # what the review page records for the image
        result[Path(path).name] = [type(exc).__name__, getattr(exc, "reason", "")]
print(json.dumps(result))
"""
    images = [str(big_pool / n) for n in BIG]
    argv = [sys.executable, "-c", script, str(tmp_path / "previews"), *images]
    proc = subprocess.run(["prlimit", f"--as={6 * GIB}", *argv], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["bomb.jpg"] == ["TooLarge", "too_large"]
    assert result["bomb.png"] == ["TooLarge", "too_large"]
    assert result["huge.png"] == [10000, 9998, 3]


def test_niqe_in_tiles_equals_niqe_of_the_whole_image():
    """Tiles cut on 96 px block edges, read with their margin and put back in blockproc's
    order, give the whole-image score to 1e-12 (the last bit of a few block features depends
    on how many blocks torch reduces at once), with partial tiles at the edges too."""
    mu, cov = niqe_params()
    photo = Image.open(colour_photos()[1]).convert("RGB").resize((1000, 700))
    x = torch.from_numpy(np.asarray(photo).transpose(2, 0, 1).copy())[None]
    whole = float(niqe_score(unit_float(x, torch.float32), mu, cov))
    for tile in (96 * 96, 300 * 300, 10**7):
        tiled = float(niqe_score_tiled(x, mu, cov, torch.float32, tile))
        assert tiled == pytest.approx(whole, rel=1e-12, abs=0)


def test_maniqa_crops_of_uint8_images_equal_crops_of_their_floats(tmp_path):
    """MANIQA crops a decoded image before any float conversion (a 100 MP image never becomes
    1.2 GB of floats); the crops are the values pyiqa's order gives."""
    rw.write_maniqa(tmp_path, rw.TINY_ARCH["maniqa"])
    scorer = create_scorer("maniqa", weights_dir=tmp_path, arch=rw.TINY_ARCH["maniqa"])
    photo = Image.open(colour_photos()[0]).convert("RGB").resize((400, 300))
    x = torch.from_numpy(np.asarray(photo).transpose(2, 0, 1).copy())[None]
    from_uint8 = scorer.prepare(x)
    from_floats = scorer.prepare(unit_float(x, torch.float32))
    assert torch.equal(from_uint8, from_floats)
    assert scorer.score(x) == scorer.score(unit_float(x, torch.float32))


def test_too_large_everywhere_else_a_decode_happens(big_pool, tmp_path):
    """Captioning and report montages open files through the same budget."""
    from captioning.captioner import load_rgb
    from curation.report.montage import _tile
    from hfaid_core.image_open import TooLarge

    for name in ("bomb.jpg", "bomb.png"):
        with pytest.raises(TooLarge) as raised:
            load_rgb(str(big_pool / name))
        assert raised.value.reason == "too_large"
        assert _tile(str(big_pool / name), "x").size == (128, 144)  # a labelled blank tile
    with pytest.raises(TooLarge):
        load_rgb(str(big_pool / "huge.png"), max_pixels=50_000_000)
