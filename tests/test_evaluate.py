"""`hfaid evaluate`: the test set (reproducible), metrics against scikit-image, the tables."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import write_photo_pool
from PIL import Image

from curation.evaluate.table import build_table, to_csv, to_markdown

# One decode in-process: the whole file runs on a busy 2-core machine.
CONFIG = "[score]\ndecode_workers = 0\n"


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One thread: on a busy 2-core box, 2 threads per process spin-wait on each other."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def bundled(tmp_path_factory) -> dict[str, Path]:
    """`hfaid evaluate` on the 8 bundled photos with both baselines, run once for the module."""
    from hfaid.cli import main

    root = tmp_path_factory.mktemp("eval")
    (root / "hfaid.toml").write_text(CONFIG)
    argv = ["evaluate", "--test-set", str(root / "set"), "--hr", "bundled",
            "--baseline", "bicubic,lanczos", "--metrics", "psnr,ssim,lpips,maniqa,brisque,niqe",
            "--catalog", str(root / "hfaid.duckdb"), "--config", str(root / "hfaid.toml"),
            "--weights-dir", str(root / "no-weights")]
    assert main(argv) == 0
    return {"root": root, "set": root / "set", "argv": argv}


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "results" not in p.parts}


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_the_set_is_the_papers_protocol_and_byte_identical_when_made_again(bundled, cli):
    folder = bundled["set"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert len(manifest["images"]) == 8 and manifest["protocol"]["hr_size"] == 512
    for image in manifest["images"]:
        assert Image.open(folder / image["hr"]).size == (512, 512)
        assert Image.open(folder / image["lr"]).size == (128, 128)
        assert image["degradation"]["scale"] == 4  # drawn, recorded, replayable
    # Made again from scratch in another folder: every file, the manifest too, byte for byte.
    again = bundled["root"] / "again"
    code, out, err = cli("evaluate", "--test-set", again, "--hr", "bundled", "--metrics", "",
                         "--catalog", bundled["root"] / "other.duckdb")
    assert code == 0, err
    first, second = _files(folder), _files(again)
    assert {k: v for k, v in first.items() if k.startswith(("hr/", "lr/", "manifest"))} == second
    # Another seed gives other LR images (the seed is really used).
    other = bundled["root"] / "seed1"
    assert cli("evaluate", "--test-set", other, "--hr", "bundled", "--seed", "1", "--metrics",
               "", "--catalog", bundled["root"] / "other.duckdb")[0] == 0
    assert (other / "hr" / "astronaut.png").read_bytes() == (folder / "hr" /
                                                            "astronaut.png").read_bytes()
    assert (other / "lr" / "astronaut.png").read_bytes() != (folder / "lr" /
                                                            "astronaut.png").read_bytes()


def test_psnr_and_ssim_of_bicubic_reproduce_scikit_image(bundled):
    from skimage.color import rgb2ycbcr
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    folder = bundled["set"]
    rows = pq.read_table(folder / "results" / "per_image.parquet").to_pylist()
    ours = {(r["method"], r["name"], r["metric"]): r["value"] for r in rows}
    psnrs, ssims = [], []
    for image in json.loads((folder / "manifest.json").read_text())["images"]:
        name = image["name"]
        lr = Image.open(folder / image["lr"]).convert("RGB")
        sr = np.asarray(lr.resize((512, 512), Image.Resampling.BICUBIC))  # x4, done here
        assert np.array_equal(sr, _rgb(folder / "baselines" / "bicubic" / f"{name}.png"))
        hr_y = rgb2ycbcr(_rgb(folder / image["hr"]))[..., 0][4:-4, 4:-4]
        sr_y = rgb2ycbcr(sr)[..., 0][4:-4, 4:-4]
        psnr = peak_signal_noise_ratio(hr_y, sr_y, data_range=255)
        ssim = structural_similarity(hr_y, sr_y, data_range=255, gaussian_weights=True,
                                     sigma=1.5, use_sample_covariance=False)
        assert abs(ours[("bicubic", name, "psnr")] - psnr) < 1e-3
        assert abs(ours[("bicubic", name, "ssim")] - ssim) < 1e-4
        psnrs.append(psnr)
        ssims.append(ssim)
    table = {r["metric"]: r for r in csv.DictReader(io.StringIO(
        (folder / "results" / "table.csv").read_text()))}
    assert abs(float(table["psnr"]["bicubic"]) - np.mean(psnrs)) < 1e-3
    assert abs(float(table["ssim"]["bicubic"]) - np.mean(ssims)) < 1e-4
    assert 15 < np.mean(psnrs) < 35 and 0.2 < np.mean(ssims) < 0.95  # a degraded x4 input


def test_table_rows_in_markdown_csv_and_the_report(bundled, cli):
    folder, root = bundled["set"], bundled["root"]
    table = {r["metric"]: r for r in csv.DictReader(io.StringIO(
        (folder / "results" / "table.csv").read_text()))}
    assert list(table) == ["psnr", "ssim", "lpips", "maniqa", "brisque", "niqe"]
    for metric in ("niqe", "brisque"):  # filled offline from the parameters hfaid ships
        for method in ("bicubic", "lanczos"):
            assert np.isfinite(float(table[metric][method]))
            assert table[metric][f"{method} images"] == "8"
        assert table[metric]["best"] in ("bicubic", "lanczos") and not table[metric]["note"]
    for metric in ("lpips", "maniqa"):  # no weights here: the row says so
        assert table[metric]["bicubic"] == "" and "hfaid weights fetch" in table[metric]["note"]
    assert table["niqe"]["lower_better"] == "True" and table["psnr"]["lower_better"] == "False"
    lower = min(("bicubic", "lanczos"), key=lambda m: float(table["niqe"][m]))
    assert table["niqe"]["best"] == lower

    markdown = (folder / "results" / "table.md").read_text()
    assert markdown.startswith("| Metric | bicubic | lanczos | Note |")
    niqe_line = next(line for line in markdown.splitlines() if line.startswith("| NIQE ↓"))
    assert f"**{float(table['niqe'][lower]):.3f}**" in niqe_line
    assert "| LPIPS ↓ | n/a | n/a | weights missing" in markdown
    assert "4 px shaved from each border" in markdown and "BT.601" in markdown

    code, _, err = cli("report", "--out", root / "report", "--catalog", root / "hfaid.duckdb")
    assert code == 0, err
    page = (root / "report" / "report.html").read_text()
    section = page[page.index('<section id="evaluation">'):]
    section = section[:section.index("</section>")]
    assert "<th>bicubic</th><th>lanczos</th>" in section
    assert f"<b>{float(table['niqe'][lower]):.3f}</b>" in section
    assert "weights missing" in section and "seed 0" in section


def test_a_rerun_scores_nothing_and_a_changed_output_only_itself(bundled, cli, tmp_path):
    folder, root = bundled["set"], bundled["root"]
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*.png")}
    assert cli(*bundled["argv"])[0] == 0
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*.png")} == before  # nothing written
    from db.catalog import Catalog
    from db.runs import list_runs

    runs = list_runs(Catalog(root / "hfaid.duckdb"))
    assert runs[0]["command"] == "evaluate" and json.loads(runs[0]["counts"])["scored pairs"] == 0

    # A method of our own: the bicubic outputs, one changed, one missing, one of a wrong size.
    mine = tmp_path / "mine"
    shutil.copytree(folder / "baselines" / "bicubic", mine)
    names = sorted(p.stem for p in mine.glob("*.png"))
    changed = _rgb(mine / f"{names[0]}.png").copy()
    changed[100:200, 100:200] = 0
    Image.fromarray(changed).save(mine / f"{names[0]}.png")
    (mine / f"{names[1]}.png").unlink()
    Image.fromarray(_rgb(mine / f"{names[2]}.png")[:500]).save(mine / f"{names[2]}.png")
    code, out, err = cli("evaluate", "--test-set", folder, "--method", f"mine={mine}",
                         "--metrics", "psnr,ssim", "--catalog", root / "hfaid.duckdb",
                         "--config", root / "hfaid.toml")
    assert code == 0, err
    assert "mine: 1 of 8 outputs missing" in err
    counts = json.loads(list_runs(Catalog(root / "hfaid.duckdb"))[0]["counts"])
    assert counts["scored pairs"] == 2  # the changed file and the wrong-size one; 5 reused
    rows = pq.read_table(folder / "results" / "per_image.parquet").to_pylist()
    cell = {(r["method"], r["name"], r["metric"]): r for r in rows}
    assert cell[("mine", names[1], "psnr")]["status"] == "missing"
    assert cell[("mine", names[2], "psnr")]["reason"] == "size_mismatch"
    assert cell[("mine", names[0], "psnr")]["value"] < cell[("bicubic", names[0], "psnr")]["value"]
    assert cell[("mine", names[3], "psnr")]["value"] == cell[("bicubic", names[3], "psnr")]["value"]
    # 6 of 8 images: the mean says so and is never the bold one.
    line = next(x for x in out.splitlines() if x.startswith("| PSNR"))
    assert "(6/8)" in line.split("|")[4] and "**" in line.split("|")[2]
    assert out.splitlines()[0] == "| Metric | bicubic | lanczos | mine |"

    code, out, _ = cli("evaluate", "--test-set", folder, "--drop", "mine", "--metrics",
                       "psnr", "--catalog", root / "hfaid.duckdb", "--config", root / "hfaid.toml")
    assert code == 0 and out.splitlines()[0] == "| Metric | bicubic | lanczos |"


def test_lpips_and_an_exact_copy_through_random_weights(cli, tmp_path):
    from curation.evaluate.fullref import write_random_lpips

    weights = write_random_lpips(tmp_path / "weights")
    code, out, _ = cli("weights", "list", "--dir", weights, "--json")
    assert code == 0 and {r["name"]: r for r in json.loads(out)}["lpips"]["present"]
    write_photo_pool(tmp_path / "hr", 2, size=(560, 520))
    (tmp_path / "hfaid.toml").write_text(CONFIG)
    common = ["--catalog", tmp_path / "c.duckdb", "--config", tmp_path / "hfaid.toml"]
    assert cli("evaluate", "--test-set", tmp_path / "set", "--hr", tmp_path / "hr",
               "--metrics", "", *common)[0] == 0
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "set" / "hr", copy)
    code, out, err = cli("evaluate", "--test-set", tmp_path / "set", "--baseline", "bicubic",
                         "--method", f"HR copy={copy}", "--metrics", "psnr,ssim,lpips",
                         "--weights-dir", weights, *common)
    assert code == 0, err
    rows = pq.read_table(tmp_path / "set" / "results" / "per_image.parquet").to_pylist()
    by = {}
    for r in rows:
        by.setdefault((r["method"], r["metric"]), []).append(r["value"])
    assert by[("HR copy", "psnr")] == [float("inf")] * 2
    assert by[("HR copy", "ssim")] == pytest.approx([1.0] * 2, abs=1e-12)
    assert by[("HR copy", "lpips")] == pytest.approx([0.0] * 2, abs=1e-6)
    assert all(v is not None and v > 1e-4 for v in by[("bicubic", "lpips")])
    assert "weights missing" not in out
    lpips_line = next(x for x in out.splitlines() if x.startswith("| LPIPS"))
    assert lpips_line.split("|")[3].strip() == "**0.0000**"
    assert next(x for x in out.splitlines() if x.startswith("| PSNR")).split("|")[3].strip() \
        == "**inf**"


@pytest.mark.parametrize("args,needle", [
    (["--method", "noequals"], "write NAME=FOLDER"),
    (["--method", "x=/nonexistent/folder"], "is not a folder"),
    (["--seed", "7"], "a set is frozen"),
    (["--baseline", "nearest"], "known are bicubic, lanczos"),
    (["--metrics", "psnr,nope"], "unknown metric 'nope'"),
    (["--drop", "nobody"], "no such method"),
])
def test_bad_input_is_one_line(bundled, cli, args, needle):
    root = bundled["root"]
    code, _, err = cli("evaluate", "--test-set", bundled["set"], "--hr", "bundled", *args,
                       "--catalog", root / "hfaid.duckdb")
    assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, err


def test_a_new_set_needs_images_that_hold_a_crop(cli, tmp_path):
    write_photo_pool(tmp_path / "small", 3, size=(320, 240))
    code, _, err = cli("evaluate", "--test-set", tmp_path / "set", "--catalog",
                       tmp_path / "c.duckdb")
    assert code == 2 and "make one with --hr" in err
    code, _, err = cli("evaluate", "--test-set", tmp_path / "set", "--hr", tmp_path / "small",
                       "--catalog", tmp_path / "c.duckdb")
    assert code == 2 and "too_small (320x240 < 512px side)" in err
    assert not (tmp_path / "set" / "manifest.json").exists()


def test_an_exported_pair_set_crops_the_exports_own_lr_and_warns_of_the_leak(cli, tmp_path):
    write_photo_pool(tmp_path / "pool", 3, size=(600, 560))
    db = tmp_path / "c.duckdb"
    assert cli("ingest", tmp_path / "pool", "--workers", "1", "--catalog", db)[0] == 0
    code, _, err = cli("export", "--out", tmp_path / "export", "--status", "all", "--captions",
                       "any", "--pairs", "--workers", "1", "--catalog", db)
    assert code == 0, err
    code, out, err = cli("evaluate", "--test-set", tmp_path / "set", "--export",
                         tmp_path / "export", "--metrics", "", "--catalog", db)
    assert code == 0, err
    assert "3 of 3 test images were exported for training" in err
    manifest = json.loads((tmp_path / "set" / "manifest.json").read_text())
    import tarfile

    shard = next((tmp_path / "export").glob("*.tar"))
    with tarfile.open(shard) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}
    for image in manifest["images"]:
        left, top = image["crop"]
        assert (left, top) == (44, 24)  # (600-512)/2, (560-512)/2, on the x4 grid
        lr_full = np.asarray(Image.open(io.BytesIO(members[f"{image['name']}.lr.png"])))
        assert np.array_equal(_rgb(tmp_path / "set" / image["lr"]),
                              lr_full[top // 4:top // 4 + 128, left // 4:left // 4 + 128])
        assert image["degradation"] is None  # the export's own degradation, not a new one


def test_best_is_per_direction_and_only_among_complete_cells():
    rows = []
    for method, values in (("a", [1.0, 2.0]), ("b", [3.0, None]), ("c", [0.5, 0.5])):
        for name, v in zip(("x", "y"), values, strict=True):
            for metric, value in (("niqe", v), ("psnr", v)):
                rows.append({"method": method, "name": name, "metric": metric, "value": value,
                             "status": "ok" if v is not None else "error"})
    layout = {"methods": [{"method": m} for m in "abc"], "images": 2, "shave": 4,
              "metrics": ["psnr", "niqe"], "notes": {},
              "protocol": {"hr_size": 512, "scale": 4, "seed": 0}}
    table = build_table(pa.Table.from_pylist(rows), layout)
    psnr, niqe = table.rows
    assert psnr.best == {"a"} and niqe.best == {"c"}  # b (1/2 images) is never best
    assert psnr.text("b") == "3.00 (1/2)" and niqe.text("c") == "0.500"
    assert "| NIQE ↓ | 1.500 | 3.000 (1/2) | **0.500** |" in to_markdown(table)
    assert to_csv(table).splitlines()[1] == "psnr,False,1.5,3.0,0.5,2,1,2,a,"
