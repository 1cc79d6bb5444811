"""Stage 1: `hfaid clean` on >= 20 kinds of bad files, re-deciding, and `hfaid dedup`."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from stage1_files import build_bad_pool

from curation.demo.photos import colour_photos
from curation.stage1.dedup import plan_dedup
from curation.stage1.neardup import (
    brute_force_pairs,
    group_labels,
    near_duplicate_pairs,
    popcount64,
)
from curation.stage1.safe_decode import DecodeReject, decode_for_measurement
from db.catalog import Catalog

CONFIG = """\
[runner]
workers = 2
shard_size = 8

[clean]
min_short_side = 100
"""


def _outcomes(catalog: Catalog) -> dict[str, tuple]:
    """file name -> ("ingest", error) or ("clean", status, reason, detail)."""
    with catalog.connect(read_only=True) as con:
        rows = con.execute(
            "SELECT p.path, p.error, o.status, o.reason, o.detail FROM paths p "
            "LEFT JOIN stage_outcomes o ON o.image_id = p.image_id AND o.stage = 'clean'"
        ).fetchall()
    found = {}
    for path, error, status, reason, detail in rows:
        name = path.rsplit("/", 1)[-1]
        found[name] = ("ingest", error) if error else ("clean", status, reason, detail)
    return found


@pytest.fixture(scope="module")
def cleaned(tmp_path_factory) -> tuple[Path, dict, Catalog]:
    from hfaid.cli import main

    root = tmp_path_factory.mktemp("stage1")
    expected = build_bad_pool(root / "pool")
    (root / "c.toml").write_text(CONFIG)
    cat = root / "c.duckdb"
    assert (
        main(
            ["ingest", str(root / "pool"), "--catalog", str(cat), "--config", str(root / "c.toml")]
        )
        == 0
    )
    assert main(["clean", "--catalog", str(cat), "--config", str(root / "c.toml")]) == 0
    return root, expected, Catalog(cat)


def test_every_bad_or_unusual_file_gets_its_specific_outcome(cleaned):
    root, expected, catalog = cleaned
    assert len(expected) >= 20
    found = _outcomes(catalog)
    assert set(found) == set(expected)
    for name, want in expected.items():
        got = found[name]
        if want[0] == "ingest":
            assert got == want, name
        else:
            assert got[1:3] == want[1:3], (name, got)
            assert got[3], f"{name}: outcome has no detail"


def test_notes_record_modes_icc_orientation_and_depth(cleaned):
    _, _, catalog = cleaned
    found = _outcomes(catalog)
    assert "mode=CMYK" in found["cmyk.jpg"][3]
    assert "icc->srgb" in found["icc_tagged.jpg"][3]
    assert "exif_orientation=6" in found["exif_rotated.jpg"][3]
    assert "16-bit" in found["rgb_16bit.png"][3]
    assert "draft" in found["UPPER_CASE.JPG"][3]  # JPEGs are decoded at reduced size
    assert "aspect_ratio 100 > 2" in found["ratio_100_1.jpg"][3]  # every failed check is listed


def test_funnel_lists_ingest_errors_and_clean_reasons(cleaned, cli):
    root, expected, catalog = cleaned
    code, out, _ = cli("funnel", "--json", "--catalog", catalog.path)
    assert code == 0
    stages = {s["stage"]: s for s in json.loads(out)["stages"]}
    assert {"broken_symlink", "not_a_file", "non_utf8_filename"} <= set(stages["ingest"]["reasons"])
    wanted = {w[2] for w in expected.values() if w[0] == "clean" and w[1] == "reject"}
    assert wanted <= set(stages["clean"]["reasons"])
    assert stages["clean"]["passed"] == len({n for n, w in expected.items() if w[1:2] == ("pass",)})


def test_measurements_are_scores_and_rerun_redecides_without_decoding(cleaned, cli):
    root, _, catalog = cleaned
    with catalog.connect(read_only=True) as con:
        metrics = {r[0] for r in con.execute("SELECT DISTINCT metric FROM scores").fetchall()}
    assert {"laplacian_var", "brightness", "entropy", "gray_delta"} <= metrics
    stricter = root / "strict.toml"
    stricter.write_text(CONFIG.replace("min_short_side = 100", "min_short_side = 100000"))
    code, out, _ = cli("clean", "--catalog", catalog.path, "--config", stricter)
    assert code == 0
    found = _outcomes(catalog)
    assert found["UPPER_CASE.JPG"][1:3] == ("reject", "too_small")
    with catalog.connect(read_only=True) as con:
        config, counts = con.execute(
            "SELECT config, counts FROM runs WHERE command = 'clean' ORDER BY run_id DESC LIMIT 1"
        ).fetchone()
    assert json.loads(counts)["measured"] == 0  # nothing decoded again
    assert json.loads(config)["clean"]["min_short_side"] == 100000  # thresholds are recorded
    assert cli("clean", "--catalog", catalog.path, "--config", root / "c.toml")[0] == 0


def test_decode_rejects_bomb_without_allocating(tmp_path):
    from stage1_files import _png_with_declared_size

    with pytest.raises(DecodeReject) as err:
        decode_for_measurement(_png_with_declared_size(60000, 60000), 10**8, 4, True, {"PNG"})
    assert err.value.reason == "decompression_bomb"


def test_exif_orientation_is_applied_before_measuring():
    photo = Image.open(colour_photos()[0]).convert("RGB").resize((400, 200))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated; viewers rotate it 90 degrees clockwise
    buf = io.BytesIO()
    photo.transpose(Image.Transpose.ROTATE_90).save(buf, format="JPEG", exif=exif.tobytes())
    decoded = decode_for_measurement(buf.getvalue(), 10**8, 1, False, {"JPEG"})
    assert (decoded.width, decoded.height) == (400, 200)
    diff = np.abs(decoded.rgb.astype(int) - np.asarray(photo, dtype=int)).mean()
    assert diff < 6


def _planted_pool(folder: Path) -> dict[str, str]:
    """Distinct real photos plus resized, re-encoded and slightly cropped copies of some."""
    folder.mkdir(parents=True)
    origin = {}
    for n, src in enumerate(colour_photos()):
        img = Image.open(src).convert("RGB")
        img.save(folder / f"orig_{n:02d}.png")
        origin[f"orig_{n:02d}.png"] = f"orig_{n:02d}.png"
        if n % 2:
            continue
        w, h = img.size
        img.resize((w * 3 // 4, h * 3 // 4), Image.Resampling.LANCZOS).save(
            folder / f"resized_{n:02d}.png"
        )
        img.save(folder / f"reencoded_{n:02d}.jpg", quality=60)
        dx, dy = max(1, w // 100), max(1, h // 100)
        img.crop((dx, dy, w - dx, h - dy)).save(folder / f"cropped_{n:02d}.jpg", quality=90)
        for kind in ("resized", "reencoded", "cropped"):
            name = f"{kind}_{n:02d}." + ("png" if kind == "resized" else "jpg")
            origin[name] = f"orig_{n:02d}.png"
    return origin


def test_planted_near_duplicates_are_grouped_and_distinct_images_are_not(tmp_path, cli):
    origin = _planted_pool(tmp_path / "pool")
    config = tmp_path / "c.toml"
    config.write_text(
        "[runner]\nworkers = 1\n[clean]\nmin_short_side = 64\nmax_aspect_ratio = 3.0\n"
        "laplacian_max = 100000\nmin_detail_ratio = 0\nmin_luma_p99 = 0\n"
        "min_entropy = 0\nmax_blockiness = 100\nmax_noise_sigma = 1000\n"
    )
    cat = tmp_path / "c.duckdb"
    for command in (["ingest", tmp_path / "pool"], ["clean"], ["dedup"]):
        code, out, err = cli(*command, "--catalog", cat, "--config", config)
        assert code == 0, err
    catalog = Catalog(cat)
    with catalog.connect(read_only=True) as con:
        rows = con.execute(
            "SELECT regexp_replace(p.path, '.*/', ''), o.status, n.representative, "
            "coalesce(n.representative, p.image_id) FROM paths p "
            "JOIN stage_outcomes o ON o.image_id = p.image_id AND o.stage = 'dedup' "
            "LEFT JOIN near_duplicates n ON n.image_id = p.image_id"
        ).fetchall()
    group_of = {name: group for name, _, _, group in rows}
    assert set(group_of) == set(origin)  # every clean image got a dedup outcome
    for name, source in origin.items():
        assert group_of[name] == group_of[source], f"{name} not grouped with {source}"
    originals = sorted({group_of[s] for s in origin.values()})
    # Distinct photos stay apart, except bundled stereo pairs that truly are near-duplicates.
    assert len(originals) >= len({*origin.values()}) - 2
    kept = [name for name, status, _, _ in rows if status == "pass"]
    assert len(kept) == len(set(group_of.values()))
    # The representative is the largest resolution: the original, not a crop or a resize.
    for name, status, _, _ in rows:
        if name.startswith(("resized", "cropped")):
            assert status == "reject"


def test_index_matches_brute_force_and_keeps_identical_hashes():
    rng = np.random.default_rng(7)
    hashes = rng.integers(0, 2**63, size=4000, dtype=np.uint64) * np.uint64(2)
    copies = hashes[:300].copy()
    for t in range(len(copies)):
        for bit in rng.choice(64, rng.integers(0, 7), replace=False):
            copies[t] ^= np.uint64(1) << np.uint64(int(bit))
    hashes = np.concatenate([hashes, copies, hashes[:5]])  # also exact repeats
    for k in (0, 3, 6, 10):
        i, j, d = near_duplicate_pairs(hashes, k)
        bi, bj = brute_force_pairs(hashes, k)
        assert set(zip(i.tolist(), j.tolist(), strict=True)) == set(
            zip(bi.tolist(), bj.tolist(), strict=True)
        )
        assert len(i) == len(set(zip(i.tolist(), j.tolist(), strict=True)))
        assert (popcount64(hashes[i] ^ hashes[j]) == d).all()
    labels = group_labels(len(hashes), *near_duplicate_pairs(hashes, 6)[:2])
    assert all(labels[t] == labels[4000 + t] for t in range(300))


def test_representative_rule_largest_then_sharpest():
    import pyarrow as pa

    table = pa.table(
        {
            "image_id": ["a", "b", "c", "d"],
            "phash": pa.array([0, 1, 3, 2**64 - 1], pa.uint64()),
            "pixels": [100, 400, 400, 50],
            "laplacian_var": [900.0, 200.0, 300.0, 1.0],
        }
    )
    groups, outcomes, counts = plan_dedup(table, 2)
    status = dict(
        zip(
            outcomes.column("image_id").to_pylist(),
            outcomes.column("status").to_pylist(),
            strict=True,
        )
    )
    assert status == {"a": "reject", "b": "reject", "c": "pass", "d": "pass"}
    assert counts == {"images": 4, "pairs_within_k": 3, "groups": 1, "kept": 2, "rejected": 2}
    assert set(groups.column("representative").to_pylist()) == {"c"}


def _gray_images() -> list[np.ndarray]:
    """Photos (crops and scales) plus flat and synthetic images whose DCT has exact ties."""
    images = []
    for path in colour_photos():
        gray = np.asarray(Image.open(path).convert("L"))
        images += [gray, gray[: gray.shape[0] // 2], gray[:, ::3]]
    x = np.arange(64)
    images += [np.full((48, 64), v, np.uint8) for v in (0, 1, 17, 128, 255)]
    images += [
        np.broadcast_to((x * 4).astype(np.uint8), (64, 64)).copy(),  # horizontal ramp
        ((x[:, None] // 8 + x[None, :] // 8) % 2 * 255).astype(np.uint8),  # checkerboard
        np.random.default_rng(3).integers(0, 256, (64, 64), dtype=np.uint8),
    ]
    return images


def test_phash_is_imagehash_phash_bit_for_bit():
    import cv2
    import imagehash

    from curation.stage1.clean import _phash64

    for gray in _gray_images():
        small = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA)
        bits = imagehash.phash(Image.fromarray(small)).hash.ravel()
        assert _phash64(gray) == int(np.packbits(bits).view(">u8")[0])


def test_result_table_matches_pyarrow_row_conversion():
    import math

    import pyarrow as pa

    from curation.stage1.clean import _result_table
    from db.stage1 import CLEAN_RESULT_SCHEMA

    choices = {
        pa.string(): ["", "jpeg, draft", "é 🙂; x" * 40],
        pa.uint64(): [0, 2**63, 2**64 - 1],
        pa.float64(): [0.0, -0.0, 1.5, 1e300, math.inf, math.nan],
    }
    rng = np.random.default_rng(5)

    def nan_free(row: dict) -> dict:  # NaN != NaN: compare NaN as a marker
        return {k: "nan" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}

    for n in (0, 1, 8, 9, 200):
        rows = [
            {
                f.name: None if rng.random() < 0.3 else _pick(rng, choices[f.type])
                for f in CLEAN_RESULT_SCHEMA
            }
            for _ in range(n)
        ]
        built = _result_table(rows)
        built.validate(full=True)
        expected = pa.Table.from_pylist(rows, schema=CLEAN_RESULT_SCHEMA)
        assert built.schema == expected.schema and built.num_rows == n
        assert [nan_free(r) for r in built.to_pylist()] == [
            nan_free(r) for r in expected.to_pylist()
        ]


def _pick(rng: np.random.Generator, values: list):
    return values[int(rng.integers(len(values)))]  # rng.choice would turn 2**64 - 1 into a float


def test_shard_plan_covers_everything_once_and_shrinks_only_with_several_workers():
    from hfaid_core.runner import plan_shards

    for items, size, workers in [(0, 8, 2), (1, 8, 2), (10, 8, 2), (2000, 256, 2), (997, 64, 16)]:
        plan = plan_shards(items, size, workers)
        assert [o for o, _ in plan] == [sum(s for _, s in plan[:i]) for i in range(len(plan))]
        assert sum(s for _, s in plan) == items
        assert all(1 <= s <= size for _, s in plan)
    assert [s for _, s in plan_shards(2000, 256, 1)] == [256] * 7 + [208]
    tail = [s for _, s in plan_shards(2000, 256, 2)]
    assert tail[:4] == [256] * 4 and tail[-1] <= 16  # the last shards are small
