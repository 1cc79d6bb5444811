"""Metric studies: blind best/worst-N items, votes, per-metric agreement, and the Study page."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from db.catalog import Catalog
from db.errors import CatalogError
from db.study import next_study_item, record_study_vote
from tests.test_selection import N, scored  # noqa: F401 - the shared scored-pool fixture


def _members(cat: Catalog, study_id: int) -> dict[tuple[str, str], set[str]]:
    with cat.connect(read_only=True) as con:
        rows = con.execute("SELECT metric, side, image_id FROM study_members WHERE study_id = ?",
                           [study_id]).fetchall()
    out: dict[tuple[str, str], set[str]] = {}
    for metric, side, image_id in rows:
        out.setdefault((metric, side), set()).add(image_id)
    return out


def test_study_picks_best_and_worst_shuffled_and_scores_agreement(scored, cli):  # noqa: F811
    cat, ids = scored
    code, out, err = cli("study", "create", "--metrics", "niqe,maniqa,clipiqa", "--n", "3",
                         "--catalog", cat.path)
    assert code == 0, err
    members = _members(cat, 1)
    # Larger i is better on niqe (lower) and maniqa (higher): both metrics pick the same images.
    assert members[("niqe", "best")] == members[("maniqa", "best")] == set(ids[21:])
    assert members[("niqe", "worst")] == set(ids[:3])
    with cat.connect(read_only=True) as con:
        order = [r[0] for r in con.execute(
            "SELECT image_id FROM study_items WHERE study_id = 1 ORDER BY position").fetchall()]
    assert len(order) == len(set(order)) == len(set().union(*members.values()))
    assert order != sorted(order)  # shuffled, so the list an image came from is not guessable
    item = next_study_item(cat, 1, "ann")
    assert item["total"] == len(order) and item["done"] == 0 and "metric" not in item

    # Ann judges by true quality: the better half good. She agrees with niqe and maniqa fully.
    while (item := next_study_item(cat, 1, "ann")) is not None:
        record_study_vote(cat, 1, item["image_id"], "ann", ids.index(item["image_id"]) >= N // 2)
    record_study_vote(cat, 1, ids[0], "bob", True)  # bob disagrees on one worst image
    code, out, err = cli("study", "results", "--json", "--catalog", cat.path)
    assert code == 0, err
    rows = {r["metric"]: r for r in json.loads(out)["metrics"]}
    assert rows["niqe"]["agreement"] == pytest.approx(6 / 7)
    assert rows["niqe"]["best_accept_rate"] == 1.0 and rows["niqe"]["reviewers"] == 2
    assert rows["clipiqa"]["agreement"] < rows["niqe"]["agreement"]
    code, out, _ = cli("study", "results", "--catalog", cat.path)
    assert "agreement" in out and "niqe" in out
    assert cli("report", "--out", cat.path.parent / "report", "--catalog", cat.path)[0] == 0
    page = (cat.path.parent / "report" / "report.html").read_text()
    assert "<td>niqe</td><td>0.86</td>" in page  # the study's verdicts are in the report

    with pytest.raises(CatalogError, match="not in study 1"):
        record_study_vote(cat, 1, next(i for i in ids if i not in order), "ann", True)
    with pytest.raises(CatalogError, match="no study 7"):
        next_study_item(cat, 7, "ann")
    code, _, err = cli("study", "create", "--metrics", "sharpness", "--catalog", cat.path)
    assert code == 2 and "unknown metric" in err


def test_study_page_shows_one_image_and_records_a_vote(scored, cli, monkeypatch):  # noqa: F811
    cat, ids = scored
    assert cli("study", "create", "--metrics", "niqe", "--n", "2", "--catalog", cat.path)[0] == 0
    script = (
        "from pathlib import Path\n"
        "from db.catalog import Catalog\n"
        "from review_app.study_page import render_study_page\n"
        f"render_study_page(Catalog(Path({str(cat.path)!r})), 'ann')\n"
    )
    at = AppTest.from_string(script, default_timeout=60).run()
    assert not at.exception
    assert "0 of 4 judged" in at.get("progress")[0].proto.text
    assert "niqe" not in " ".join(m.value for m in at.markdown)  # metric names stay hidden
    first = next_study_item(cat, 1, "ann")["image_id"]
    at.button(key=f"study-good-{first}").click().run()
    assert not at.exception
    assert "1 of 4 judged" in at.get("progress")[0].proto.text
    results = AppTest.from_string(script.replace(
        "render_study_page(Catalog(Path(", "__import__('review_app.study_page').study_page."
        "render_study_results(Catalog(Path(").replace(", 'ann')", ")"), default_timeout=60).run()
    assert not results.exception
    assert len(results.dataframe) == 1
