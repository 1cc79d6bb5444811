"""Stage-1 measures and cuts: noise against scikit-image, the JPEG band, blocking, blur, pool
rules, `clean --explain`, and exact duplicates recorded at ingest."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import pywt
from PIL import Image, ImageFilter
from skimage.restoration import estimate_sigma

from curation.demo.photos import colour_photos
from curation.stage1.band import BAND_ROWS, jpeg_top_band
from curation.stage1.blockiness import blockiness
from curation.stage1.clean import _detail_ratio, _laplacian_var
from curation.stage1.cuts import CUT_BY_KEY, cut_value, parse_rule
from curation.stage1.noise import hh_coefficients, measured_crops, noise_sigma
from db.catalog import Catalog
from hfaid_core.settings.stage1 import CleanConfig


def _photo(index: int, size: tuple[int, int] | None = None) -> Image.Image:
    img = Image.open(colour_photos()[index % len(colour_photos())]).convert("RGB")
    return img.resize(size, Image.Resampling.LANCZOS) if size else img


def _jpeg(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", **{"quality": 92, **kw})
    return buf.getvalue()


def _luma_noise(img: Image.Image, sigma: float, seed: int) -> Image.Image:
    arr = np.asarray(img, dtype=np.float64)
    noise = np.random.default_rng(seed).normal(0, sigma, arr.shape[:2])[..., None]
    return Image.fromarray(np.clip(arr + noise, 0, 255).round().astype(np.uint8))


def test_hh_coefficients_are_pywt_db2_diagonal_details():
    rng = np.random.default_rng(0)
    for shape in ((64, 64), (37, 50), (16, 16)):
        crop = rng.integers(0, 256, shape).astype(np.uint8)
        reference = pywt.dwt2(crop.astype(np.float64), "db2")[1][2]
        np.testing.assert_allclose(hh_coefficients(crop), reference, atol=1e-3)


def test_noise_estimate_matches_scikit_image_on_the_same_crops():
    """Per crop and for the image's estimate (the least textured crop), within 10%. Below
    sigma 1 (flat, compressed crops) both only need to agree that it is below 1: pywt leaves
    ~1e-32 residues where a coefficient is zero, which skimage keeps and we drop as zeros."""
    compared = 0
    for k in range(len(colour_photos())):
        for sigma in (0.0, 5.0, 15.0):
            img = _photo(k)
            if sigma:
                img = _luma_noise(img, sigma, k)
            band = jpeg_top_band(_jpeg(img, quality=95))
            crops = measured_crops(band)
            ours = [noise_sigma(c) for c in crops]
            theirs = [float(estimate_sigma(c.astype(np.float64))) for c in crops]
            for a, b in zip(ours, theirs, strict=True):
                if max(a, b) >= 1.0:
                    assert a == pytest.approx(b, rel=0.10), (k, sigma)
                else:
                    assert a < 1.0 and b < 1.0
            if sigma:
                assert noise_sigma(band) == pytest.approx(min(theirs), rel=0.10)
            compared += len(crops)
    assert compared >= 100


def test_noise_estimate_recovers_planted_sigma_and_ignores_clipped_crops():
    flat = np.full((BAND_ROWS, 512), 128.0)
    for sigma in (2.0, 10.0, 25.0):
        noisy = np.clip(flat + np.random.default_rng(1).normal(0, sigma, flat.shape), 0, 255)
        assert noise_sigma(noisy.round().astype(np.uint8)) == pytest.approx(sigma, rel=0.08)
    # A band half black: those crops clip the noise; the estimate comes from the rest.
    band = np.full((BAND_ROWS, 512), 128.0)
    band[:, :256] = 0
    band = np.clip(band + np.random.default_rng(2).normal(0, 10, band.shape), 0, 255)
    assert noise_sigma(band.round().astype(np.uint8)) == pytest.approx(10, rel=0.08)


@pytest.mark.parametrize(
    "variant",
    ["baseline_420", "baseline_444", "progressive", "restart_markers", "cmyk", "short", "mpo"],
)
def test_jpeg_top_band_is_the_full_decode_top_rows(variant):
    img = _photo(3, (331, 250))
    kw: dict = {}
    if variant == "baseline_444":
        kw["subsampling"] = 0
    elif variant == "progressive":
        kw["progressive"] = True
    elif variant == "restart_markers":
        kw["restart_marker_rows"] = 1
    elif variant == "cmyk":
        img = img.convert("CMYK")
    elif variant == "short":
        img = img.resize((331, 40))
    if variant == "mpo":
        buf = io.BytesIO()
        img.save(buf, format="MPO", save_all=True, append_images=[_photo(4, (64, 48))])
        data = buf.getvalue()
    else:
        data = _jpeg(img, **kw)
    band = jpeg_top_band(data)
    if variant == "cmyk":  # Pillow's CMYK -> L (through RGB), as the band converts it
        with Image.open(io.BytesIO(data)) as full:
            expected = np.asarray(full.convert("L"))
    else:  # libjpeg's luma plane, as the band decodes it
        expected = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    expected = expected[:BAND_ROWS]
    assert band is not None and band.shape == expected.shape
    assert np.array_equal(band, expected)


def test_jpeg_top_band_declines_what_it_cannot_decode():
    png = io.BytesIO()
    _photo(0, (64, 64)).save(png, format="PNG")
    assert jpeg_top_band(png.getvalue()) is None
    assert jpeg_top_band(b"\xff\xd8\xff garbage") is None


def test_blockiness_separates_heavy_jpeg_from_clean_and_periodic_content():
    cut = CleanConfig().max_blockiness
    for k in range(8):
        img = _photo(k)
        clean = blockiness(jpeg_top_band(_jpeg(img, quality=90)))
        heavy = blockiness(jpeg_top_band(_jpeg(img, quality=8)))
        assert clean < cut < heavy, (k, clean, heavy)
    # Coarse 4x4 grain steps at every 4th pixel, block edges included: not blocking.
    grain = np.random.default_rng(0).normal(128, 40, (16, 64))
    periodic = np.repeat(np.repeat(grain, 4, axis=0), 4, axis=1).clip(0, 255).astype(np.uint8)
    assert blockiness(periodic) == pytest.approx(1.0, abs=0.15)
    assert blockiness(np.full((64, 64), 90, np.uint8)) == pytest.approx(1.0)
    assert blockiness(np.zeros((8, 64), np.uint8)) is None


def test_detail_ratio_falls_with_blur_whatever_the_texture():
    for k in range(6):
        gray = np.asarray(_photo(k, (400, 300)).convert("L"))
        blurred = np.asarray(Image.fromarray(gray).filter(ImageFilter.GaussianBlur(1.5)))
        sharp_ratio = _detail_ratio(gray, _laplacian_var(gray))
        blur_ratio = _detail_ratio(blurred, _laplacian_var(blurred))
        assert blur_ratio < CleanConfig().min_detail_ratio < sharp_ratio, (k, blur_ratio)
    flat = np.full((100, 100), 77, np.uint8)
    assert _detail_ratio(flat, _laplacian_var(flat)) == pytest.approx(1.0)


def test_pool_rules_mad_and_quantile():
    assert parse_rule("mad 3.5") == ("mad", 3.5)
    assert parse_rule(" quantile 0.01 ") == ("quantile", 0.01)
    for bad in ("mad", "mad -1", "quantile 0.7", "median", "mad 3 x"):
        with pytest.raises(ValueError):
            parse_rule(bad)
    values = np.concatenate([np.linspace(90, 110, 101), [np.nan, 5.0]])
    entropy = CUT_BY_KEY["min_entropy"]  # linear, fails below
    cfg = CleanConfig(pool={"min_entropy": "mad 3"})
    finite = values[np.isfinite(values)]
    mad = 1.4826 * np.median(np.abs(finite - np.median(finite)))
    assert cut_value(entropy, cfg, values) == pytest.approx(np.median(finite) - 3 * mad)
    cfg = CleanConfig(pool={"min_entropy": "quantile 0.1"})
    assert cut_value(entropy, cfg, values) == pytest.approx(np.quantile(finite, 0.1))
    noise = CUT_BY_KEY["max_noise_sigma"]  # log scale, fails above
    logs = np.log10([1.0, 10.0, 100.0])
    expected = 10 ** (np.median(logs) + 2 * 1.4826 * np.median(np.abs(logs - np.median(logs))))
    assert cut_value(noise, CleanConfig(pool={"max_noise_sigma": "mad 2"}),
                     np.array([1.0, 10.0, 100.0])) == pytest.approx(expected)
    assert cut_value(noise, CleanConfig(), values) == CleanConfig().max_noise_sigma


@pytest.fixture
def small_pool(tmp_path: Path) -> Path:
    """12 distinct crops, 2 noisy, 1 heavy JPEG, and byte-identical copies of one file."""
    folder = tmp_path / "pool"
    folder.mkdir()
    for k in range(12):
        (folder / f"photo_{k:02d}.jpg").write_bytes(_jpeg(_photo(k, (384, 288))))
    for k in range(2):
        noisy = _luma_noise(_photo(12 + k, (384, 288)), 18.0, k)
        (folder / f"noisy_{k}.jpg").write_bytes(_jpeg(noisy, quality=95))
    (folder / "blocky.jpg").write_bytes(_jpeg(_photo(14, (384, 288)), quality=5))
    for name in ("z_copy.jpg", "sub/copy_again.jpg"):
        (folder / name).parent.mkdir(exist_ok=True)
        shutil.copyfile(folder / "photo_03.jpg", folder / name)
    return folder


def _config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "c.toml"
    path.write_text(f"[runner]\nworkers = 1\n[clean]\nmin_short_side = 128\n{extra}")
    return path


def test_exact_duplicates_are_ingest_outcomes_counted_in_the_funnel(small_pool, tmp_path, cli):
    cat, config = tmp_path / "c.duckdb", _config(tmp_path)
    code, out, err = cli("ingest", small_pool, "--catalog", cat, "--config", config)
    assert code == 0, err
    assert "exact duplicates" in out
    with Catalog(cat).connect(read_only=True) as con:
        rows = con.execute(
            "SELECT path, status, reason, detail FROM ingest_outcomes WHERE status <> 'pass'"
        ).fetchall()
        paths = con.execute("SELECT count(*) FROM paths").fetchone()[0]
    kept = str(small_pool / "photo_03.jpg")
    assert sorted((Path(p).name, s, r) for p, s, r, _ in rows) == [
        ("copy_again.jpg", "reject", "exact_duplicate"),
        ("z_copy.jpg", "reject", "exact_duplicate"),
    ]
    assert all(d == f"byte-identical to {kept}" for *_, d in rows)
    code, out, _ = cli("funnel", "--json", "--catalog", cat, "--config", config)
    ingest = next(s for s in json.loads(out)["stages"] if s["stage"] == "ingest")
    assert ingest["seen"] == paths and ingest["rejected"] == 2
    assert ingest["passed"] == paths - 2 and ingest["reasons"] == {"exact_duplicate": 2}


def test_explain_and_pool_rules_redecide_without_decoding(small_pool, tmp_path, cli):
    cat, config = tmp_path / "c.duckdb", _config(tmp_path)
    assert cli("ingest", small_pool, "--catalog", cat, "--config", config)[0] == 0
    code, out, err = cli("clean", "--explain", "--json", "--catalog", cat, "--config", config)
    assert code == 0, err
    run = json.loads(out)
    cuts = {row["cut"]: row for row in run["explain"]}
    assert run["measured"] == 15 and run["reasons"] == {"noisy": 2, "blocky": 1}
    assert cuts["max_noise_sigma"]["fails"] == 2 and cuts["max_blockiness"]["fails"] == 1
    assert cuts["max_noise_sigma"]["rule"] == "absolute" and cuts["max_noise_sigma"]["value"] == 8
    assert cuts["laplacian_max"]["value"] == "inf" and cuts["laplacian_max"]["fails"] == 0
    assert cuts["max_noise_sigma"]["measured"] == 15
    with Catalog(cat).connect(read_only=True) as con:
        versions = dict(con.execute(
            "SELECT DISTINCT metric, version FROM scores WHERE metric IN "
            "('noise_sigma', 'blockiness', 'laplacian_var')").fetchall())
    assert versions["noise_sigma"].startswith("noise-")
    assert versions["laplacian_var"] == "clean-2-x4"
    # The terminal table names every cut.
    code, out, _ = cli("clean", "--explain", "--catalog", cat, "--config", config)
    assert code == 0 and "(fails: images failing the cut" in out
    # A pool rule on the noise cut: the noisiest quarter fails; nothing is decoded again.
    pooled = _config(tmp_path, '[clean.pool]\nmax_noise_sigma = "quantile 0.25"\n')
    code, out, err = cli("clean", "--explain", "--json", "--catalog", cat, "--config", pooled)
    assert code == 0, err
    run = json.loads(out)
    noise = next(r for r in run["explain"] if r["cut"] == "max_noise_sigma")
    assert run["measured"] == 0 and noise["rule"] == "quantile 0.25"
    assert 3 <= noise["fails"] <= 4  # above the 75th percentile of 15 values
    with Catalog(cat).connect(read_only=True) as con:
        details = [d for (d,) in con.execute(
            "SELECT detail FROM stage_outcomes WHERE stage = 'clean' AND reason = 'noisy'"
        ).fetchall()]
    assert len(details) == noise["fails"]
    assert all("(pool quantile 0.25)" in d for d in details)


@pytest.mark.parametrize(
    "extra, message",
    [
        ('[clean.pool]\nmax_noise = "mad 3"\n', "[clean.pool] max_noise: not a cut"),
        ('[clean.pool]\nmin_entropy = "median"\n', "is not `mad K` or `quantile Q`"),
        ('[clean.pool]\nmin_entropy = "quantile 0.9"\n', "quantile must be in [0, 0.5)"),
    ],
)
def test_bad_pool_rules_are_one_line_errors(tmp_path, cli, extra, message):
    cat = tmp_path / "c.duckdb"
    code, out, err = cli("clean", "--catalog", cat, "--config", _config(tmp_path, extra))
    assert code == 2
    assert message in err and "Traceback" not in err


def test_report_draws_each_stage1_measure_with_its_cut(small_pool, tmp_path, cli):
    cat, config = tmp_path / "c.duckdb", _config(tmp_path)
    for command in (["ingest", small_pool], ["clean"]):
        assert cli(*command, "--catalog", cat, "--config", config)[0] == 0
    code, out, err = cli("report", "--out", tmp_path / "report", "--catalog", cat,
                         "--config", config)
    assert code == 0, err
    page = (tmp_path / "report" / "report.html").read_text()
    assert 'id="stage1"' in page
    for key in ("max_noise_sigma", "max_blockiness", "min_detail_ratio", "min_short_side"):
        assert (tmp_path / "report" / f"stage1_{key}.png").stat().st_size > 1000
        assert f'alt="stage 1 {key}"' in page
    # Stage-1 measures are not listed among the scoring metrics.
    assert "hist_noise_sigma.png" not in page and "hist_brightness.png" not in page
