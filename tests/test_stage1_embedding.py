"""Semantic dedup: the cosine search (faiss or blocks), grouping, and `dedup --method embedding`
end to end with a random-weight CLIP image tower loaded like a real checkpoint."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from curation.demo.photos import colour_photos
from curation.stage1.dedup import plan_embedding_dedup
from curation.stage1.embed import write_random_clip
from curation.stage1.semantic import cosine_pairs, faiss_available
from db.catalog import Catalog


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _pairs(found: tuple) -> set[tuple[int, int]]:
    return set(zip(found[0].tolist(), found[1].tolist(), strict=True))


def _brute(vectors: np.ndarray, min_cosine: float) -> set[tuple[int, int]]:
    sims = vectors @ vectors.T
    i, j = np.nonzero(np.triu(sims >= min_cosine, k=1))
    return set(zip(i.tolist(), j.tolist(), strict=True))


@pytest.mark.parametrize("block", [7, 64, 4096])
def test_blocked_search_finds_exactly_the_pairs_above_the_threshold(block):
    rng = np.random.default_rng(0)
    vectors = _unit(rng, 300, 24)
    # Plant near copies: small perturbations of 20 rows, and one pile of 5 identical rows.
    vectors[200:220] = vectors[:20] + 0.05 * _unit(rng, 20, 24)
    vectors[220:225] = vectors[30]
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    i, j, sims = cosine_pairs(vectors, 0.95, block=block, use_faiss=False)
    assert _pairs((i, j)) == _brute(vectors, 0.95)
    assert len(i) >= 20 + 15  # the perturbed copies and the pile's 15 pairs (with row 30)
    assert np.all(i < j) and np.all(sims >= 0.95)
    np.testing.assert_allclose(sims, np.einsum("ij,ij->i", vectors[i], vectors[j]), atol=1e-5)


@pytest.mark.skipif(not faiss_available(), reason="faiss not installed (optional)")
def test_faiss_search_agrees_with_blocks():
    rng = np.random.default_rng(1)
    vectors = _unit(rng, 500, 16)
    vectors[400:450] = vectors[:50]
    a = cosine_pairs(vectors, 0.9, use_faiss=True)
    b = cosine_pairs(vectors, 0.9, use_faiss=False)
    assert _pairs(a) == _pairs(b)


def test_groups_of_equal_embeddings_keep_the_largest_image():
    rng = np.random.default_rng(2)
    vectors = _unit(rng, 6, 8)
    vectors[3] = vectors[0]  # forced equal: one group {0, 3, 5}
    vectors[5] = vectors[0]
    candidates = pa.table({
        "image_id": [f"id{k}" for k in range(6)],
        "pixels": [100, 100, 100, 400, 100, 400],
        "laplacian_var": [1.0, 1.0, 1.0, 5.0, 1.0, 9.0],
    })
    groups, outcomes, counts = plan_embedding_dedup(candidates, vectors, 0.999)
    status = dict(zip(outcomes.column("image_id").to_pylist(),
                      outcomes.column("status").to_pylist(), strict=True))
    # id3 and id5 are largest; id5 is sharper: it is kept.
    assert status == {"id0": "reject", "id1": "pass", "id2": "pass", "id3": "reject",
                      "id4": "pass", "id5": "pass"}
    assert counts["groups"] == 1 and counts["rejected"] == 2
    assert set(groups.column("method").to_pylist()) == {"embedding"}
    assert groups.column("distance").null_count == groups.num_rows
    np.testing.assert_allclose(groups.column("similarity").to_numpy(), 1.0, atol=1e-5)
    detail = outcomes.column("detail").to_pylist()[0]
    assert detail.startswith("duplicate of id5 (embedding cosine 1.0000")


def _pool(folder: Path) -> dict[str, str]:
    """Distinct photos as JPEG, plus pixel-identical copies in other containers (PNG, BMP,
    TIFF: different bytes, so ingest keeps them apart; equal pixels, so equal embeddings)."""
    folder.mkdir(parents=True)
    photos = colour_photos()[:8]
    origin = {}
    for k, path in enumerate(photos):
        img = Image.open(path).convert("RGB").resize((320, 240))
        img.save(folder / f"photo_{k}.png")
        origin[f"photo_{k}.png"] = f"photo_{k}.png"
        if k < 3:
            fmt = ("BMP", "TIFF", "WEBP")[k]
            buf = io.BytesIO()
            img.save(buf, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
            name = f"copy_{k}.{fmt.lower()}"
            (folder / name).write_bytes(buf.getvalue())
            origin[name] = f"photo_{k}.png"
    return origin


def test_dedup_method_embedding_end_to_end(tmp_path, cli):
    origin = _pool(tmp_path / "pool")
    model = write_random_clip(tmp_path / "clip")
    config = tmp_path / "c.toml"
    config.write_text(
        "[runner]\nworkers = 1\n[clean]\nmin_short_side = 128\n"
        f'[dedup]\nembedding_model = "{model}"\nmin_cosine = 0.99999\ndevice = "cpu"\n'
    )
    cat = tmp_path / "c.duckdb"
    for command in (["ingest", tmp_path / "pool"], ["clean"]):
        code, _, err = cli(*command, "--catalog", cat, "--config", config)
        assert code == 0, err
    code, out, err = cli("dedup", "--method", "embedding", "--catalog", cat, "--config", config)
    assert code == 0, err
    assert "embedded now" in out
    catalog = Catalog(cat)
    with catalog.connect(read_only=True) as con:
        rows = con.execute(
            "SELECT regexp_replace(p.path, '.*/', ''), o.status, o.detail, n.method, "
            "n.similarity FROM paths p JOIN stage_outcomes o ON o.image_id = p.image_id "
            "AND o.stage = 'dedup' LEFT JOIN near_duplicates n ON n.image_id = p.image_id"
        ).fetchall()
        stored = con.execute("SELECT count(*), min(len(vector)) FROM embeddings").fetchone()
    assert stored == (len(origin), 16)
    by_name = {name: (status, detail, method, sim) for name, status, detail, method, sim in rows}
    assert set(by_name) == set(origin)
    for name, source in origin.items():
        status, detail, method, sim = by_name[name]
        if name.startswith("copy_"):
            # Equal pixels, equal embeddings: grouped with the original; one of the two kept.
            assert method == "embedding" and sim == pytest.approx(1.0, abs=1e-5)
            assert by_name[source][2] == "embedding"
            assert {status, by_name[source][0]} == {"pass", "reject"}
        elif name not in {o for n, o in origin.items() if n.startswith("copy_")}:
            assert status == "pass" and method is None, name
    # A new threshold regroups from stored embeddings; nothing is embedded again.
    code, out, err = cli("dedup", "--method", "embedding", "--min-cosine", "0.5",
                         "--catalog", cat, "--config", config)
    assert code == 0, err
    assert re.search(r"embedded now\s*│\s*0 │", out), out
    # pHash stays the default method and replaces the groups.
    code, _, err = cli("dedup", "--catalog", cat, "--config", config)
    assert code == 0, err
    with catalog.connect(read_only=True) as con:
        methods = {m for (m,) in con.execute("SELECT method FROM near_duplicates").fetchall()}
    assert methods <= {"phash"}


def test_missing_embedding_weights_and_bad_options_are_one_line_errors(tmp_path, cli):
    cat = tmp_path / "c.duckdb"
    config = tmp_path / "c.toml"
    config.write_text(f'[weights]\ndir = "{tmp_path / "weights"}"\n')
    code, _, err = cli("dedup", "--method", "embedding", "--catalog", cat, "--config", config)
    assert code == 2
    assert "hfaid weights fetch clip-vit-b32" in err and "Traceback" not in err
    for args, message in (
        (["--method", "clip"], "--method must be phash or embedding"),
        (["--method", "embedding", "--min-cosine", "1.5"],
         "--min-cosine = 1.5: must be between 0 and 1"),
    ):
        code, _, err = cli("dedup", *args, "--catalog", cat, "--config", config)
        assert code == 2 and message in err
