"""Selection policy, `hfaid select`, thresholds from reviewers and the funnel report."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from curation.selection.policy import stage_policy
from curation.selection.thresholds import roc
from db.catalog import Catalog
from db.outcomes import write_outcomes
from db.scores import write_scores
from hfaid_core.config import load_config
from hfaid_core.errors import HfaidError
from tests.conftest import write_photo_pool

N = 24


def _rows(cat: Catalog, sql: str) -> list[tuple]:
    with cat.connect(read_only=True) as con:
        return con.execute(sql).fetchall()


def _outcomes(cat: Catalog, stage: str) -> dict[str, tuple]:
    return {
        r[0]: (r[1], r[2])
        for r in _rows(
            cat, f"SELECT image_id, status, reason FROM stage_outcomes WHERE stage = '{stage}'"
        )
    }


@pytest.fixture
def scored(tmp_path: Path, cli) -> tuple[Catalog, list[str]]:
    """24 real photos ingested, all passed dedup, with niqe/maniqa/clipiqa rising with rank i.

    Image i (by sorted image_id) has maniqa 0.2+0.02i (higher better) and niqe 8-0.25i
    (lower better), so a larger i is better on both.
    """
    write_photo_pool(tmp_path / "pool", N)
    catalog = tmp_path / "c.duckdb"
    code, _, err = cli("ingest", tmp_path / "pool", "--catalog", catalog, "--workers", "1")
    assert code == 0, err
    cat = Catalog(catalog)
    ids = [r[0] for r in _rows(cat, "SELECT image_id FROM images ORDER BY image_id")]
    assert len(ids) == N
    write_outcomes(
        cat,
        pa.table(
            {
                "image_id": ids,
                "stage": ["dedup"] * N,
                "status": ["pass"] * N,
                "reason": [None] * N,
                "detail": [None] * N,
            }
        ),
        run_id=1,
    )
    rows = {"image_id": [], "metric": [], "value": [], "version": []}
    for i, image_id in enumerate(ids):
        for metric, value in (
            ("maniqa", 0.2 + 0.02 * i),
            ("niqe", 8 - 0.25 * i),
            ("clipiqa", 0.3 + 0.01 * ((i * 7) % N)),
        ):
            rows["image_id"].append(image_id)
            rows["metric"].append(metric)
            rows["value"].append(value)
            rows["version"].append("t-1")
    write_scores(cat, pa.table(rows), run_id=1)
    return cat, ids


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


def test_policy_toml_loads_rules_and_rejects_bad_settings(tmp_path: Path):
    cfg = load_config(
        _config(
            tmp_path,
            """
[policy.quality]
combine = "all"
[[policy.quality.rules]]
metric = "niqe"
max = 5
[[policy.quality.rules]]
metric = "maniqa"
keep_fraction = 0.5
""",
        )
    )
    rules = stage_policy(cfg.policy, "quality").rules
    assert [(r.metric, r.max, r.keep_fraction) for r in rules] == [
        ("niqe", 5.0, None),
        ("maniqa", None, 0.5),
    ]
    assert cfg.policy.review.combine == "rank_fusion"  # untouched stages keep defaults
    with pytest.raises(HfaidError, match="unknown key"):
        load_config(_config(tmp_path, "[[policy.quality.rules]]\nmetric = 'niqe'\nmaxx = 3\n"))
    bad = load_config(_config(tmp_path, "[policy.quality]\ncombine = 'any'\n"))
    with pytest.raises(HfaidError, match="combine"):
        stage_policy(bad.policy, "quality")
    odd = load_config(
        _config(tmp_path, "[[policy.quality.rules]]\nmetric = 'sharpness'\nmin = 1\n")
    )
    with pytest.raises(HfaidError, match="lower_better"):
        stage_policy(odd.policy, "quality")


def test_dry_run_counts_each_rule_and_writes_nothing(scored, tmp_path: Path, cli):
    cat, _ = scored
    config = _config(
        tmp_path,
        """
[[policy.quality.rules]]
metric = "niqe"
max = 5.0
[[policy.quality.rules]]
metric = "maniqa"
min = 0.49
""",
    )
    code, out, err = cli(
        "select", "--stage", "quality", "--dry-run", "--catalog", cat.path, "--config", config
    )
    assert code == 0, err
    # niqe = 8 - 0.25 i <= 5 keeps i >= 12 (12 images); maniqa >= 0.49 keeps i >= 15 (9).
    assert re.search(r"niqe <= 5\s.*\b12\b.*\b12\b", out)
    assert re.search(r"maniqa >= 0\.49\s.*\b9\b.*\b9\b", out)
    assert "9 would pass" in out
    assert _outcomes(cat, "quality") == {}


def test_select_records_first_failing_rule_and_retuning_never_touches_scores(
    scored, tmp_path: Path, cli
):
    cat, ids = scored
    before = _rows(cat, "SELECT * FROM scores ORDER BY image_id, metric")
    strict = _config(
        tmp_path,
        "[[policy.quality.rules]]\nmetric = 'niqe'\nmax = 5.0\n"
        "[[policy.quality.rules]]\nmetric = 'maniqa'\nmin = 0.49\n",
    )
    code, out, err = cli("select", "--stage", "quality", "--catalog", cat.path, "--config", strict)
    assert code == 0, err
    got = _outcomes(cat, "quality")
    assert got[ids[0]] == ("reject", "niqe_above_max")
    assert got[ids[13]] == ("reject", "maniqa_below_min")
    assert got[ids[20]] == ("pass", None)
    assert sum(s == "pass" for s, _ in got.values()) == 9
    detail = _rows(
        cat, f"SELECT detail FROM stage_outcomes WHERE image_id = '{ids[0]}' AND stage = 'quality'"
    )[0][0]
    assert detail.startswith("niqe=8, needs <= 5")

    loose = _config(tmp_path, "[[policy.quality.rules]]\nmetric = 'niqe'\nmax = 7.0\n")
    code, _, err = cli("select", "--stage", "quality", "--catalog", cat.path, "--config", loose)
    assert code == 0, err
    got = _outcomes(cat, "quality")
    assert got[ids[13]] == ("pass", None)
    assert sum(s == "pass" for s, _ in got.values()) == 20  # 8 - 0.25 i <= 7 for i >= 4
    assert _rows(cat, "SELECT * FROM scores ORDER BY image_id, metric") == before
    assert _rows(cat, "SELECT count(*) FROM stage_outcomes WHERE stage = 'quality'") == [(N,)]


def test_fraction_top_k_and_rank_fusion(scored, tmp_path: Path, cli):
    cat, ids = scored
    config = _config(
        tmp_path,
        """
[[policy.quality.rules]]
metric = "niqe"
keep_fraction = 0.25
[[policy.aesthetic.rules]]
metric = "maniqa"
top_k = 4
[policy.review]
combine = "rank_fusion"
keep_top_k = 2
[[policy.review.rules]]
metric = "niqe"
[[policy.review.rules]]
metric = "maniqa"
""",
    )
    for stage in ("quality", "aesthetic", "review"):
        code, _, err = cli("select", "--stage", stage, "--catalog", cat.path, "--config", config)
        assert code == 0, err
    quality = {i for i, (s, _) in _outcomes(cat, "quality").items() if s == "pass"}
    assert quality == set(ids[18:])  # lowest niqe quarter (quantile cut, ties kept)
    aesthetic = _outcomes(cat, "aesthetic")
    assert {i for i, (s, _) in aesthetic.items() if s == "pass"} == set(ids[20:])
    assert aesthetic[ids[18]] == ("reject", "maniqa_below_top_k")
    review = _outcomes(cat, "review_queue")
    assert {i for i, (s, _) in review.items() if s == "pass"} == set(ids[22:])
    assert review[ids[20]] == ("reject", "below_fusion_cut")


def test_absent_metric_passes_through_with_note_and_partial_scores_reject(
    scored, tmp_path: Path, cli
):
    cat, ids = scored
    loose = _config(tmp_path, "[[policy.quality.rules]]\nmetric = 'niqe'\nmax = 100.0\n")
    assert cli("select", "--stage", "quality", "--catalog", cat.path, "--config", loose)[0] == 0
    # Default aesthetic policy needs qalign_aesthetic, which nothing has: pass-through + note.
    code, out, err = cli("select", "--stage", "aesthetic", "--catalog", cat.path, "--config", loose)
    assert code == 0, err
    assert "no image in the input has a qalign_aesthetic score" in out
    assert all(s == "pass" for s, _ in _outcomes(cat, "aesthetic").values())
    write_scores(
        cat,
        pa.table(
            {
                "image_id": ids[:3],
                "metric": ["qalign_aesthetic"] * 3,
                "value": [4.0, 3.0, 2.0],
                "version": ["t"] * 3,
            }
        ),
        run_id=2,
    )
    code, out, err = cli("select", "--stage", "aesthetic", "--catalog", cat.path, "--config", loose)
    assert code == 0, err
    got = _outcomes(cat, "aesthetic")
    assert got[ids[5]] == ("reject", "qalign_aesthetic_missing")
    assert "21 input images lack a qalign_aesthetic score" in out
    # A fusion whose only metric is unscored keeps everything rather than an arbitrary top-k.
    fusion = _config(tmp_path, "[policy.review]\ncombine = 'rank_fusion'\nkeep_top_k = 1\n"
                               "[[policy.review.rules]]\nmetric = 'musiq'\n")
    code, out, err = cli("select", "--stage", "review", "--dry-run", "--catalog", cat.path,
                         "--config", fusion)
    assert code == 0, err
    flat = " ".join(out.split())  # rich wraps long notes
    assert "rank fusion skipped" in flat and "1 would pass" in flat


def test_shrinking_input_removes_stale_outcomes_and_missing_input_is_clear(
    scored, tmp_path: Path, cli
):
    cat, ids = scored
    code, _, err = cli("select", "--stage", "aesthetic", "--catalog", cat.path)
    assert code == 2 and "no images passed stage 'quality'" in err
    loose = _config(
        tmp_path,
        "[[policy.quality.rules]]\nmetric = 'niqe'\nmax = 100.0\n"
        "[[policy.aesthetic.rules]]\nmetric = 'niqe'\nmax = 100.0\n",
    )
    for stage in ("quality", "aesthetic"):
        assert cli("select", "--stage", stage, "--catalog", cat.path, "--config", loose)[0] == 0
    assert len(_outcomes(cat, "aesthetic")) == N
    tight = tmp_path / "tight.toml"
    tight.write_text(
        "[[policy.quality.rules]]\nmetric = 'niqe'\nmax = 4.0\n"
        "[[policy.aesthetic.rules]]\nmetric = 'niqe'\nmax = 100.0\n"
    )
    for stage in ("quality", "aesthetic"):
        assert cli("select", "--stage", stage, "--catalog", cat.path, "--config", tight)[0] == 0
    assert set(_outcomes(cat, "aesthetic")) == set(ids[16:])  # only quality survivors remain


def test_roc_auc_and_threshold_at_target_precision():
    values = np.array([1.0, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    accepted = np.array([0, 0, 0, 1, 0, 1, 1, 1, 1, 1], dtype=bool)
    r = roc(values, accepted, lower_better=False, target_precision=0.8)
    assert r["auc"] == pytest.approx(23 / 24)  # 23 of 24 (accept, reject) pairs ordered right
    assert r["threshold"] == 4.0 and r["precision"] == pytest.approx(6 / 7)
    assert r["recall"] == 1.0
    flipped = roc(-values, accepted, lower_better=True, target_precision=0.8)
    assert flipped["auc"] == pytest.approx(r["auc"]) and flipped["threshold"] == -4.0
    assert roc(values, np.ones(10, dtype=bool), False, 0.9)["auc"] is None


def test_suggest_prints_a_policy_snippet_that_loads(scored, tmp_path: Path, cli):
    cat, ids = scored
    # Reviewers accept the better half (by niqe/maniqa), reject the rest.
    status = ["pass" if i >= 12 else "reject" for i in range(N)]
    write_outcomes(
        cat,
        pa.table(
            {
                "image_id": ids,
                "stage": ["review"] * N,
                "status": status,
                "reason": [None] * N,
                "detail": [None] * N,
            }
        ),
        run_id=3,
    )
    code, out, err = cli("select", "--suggest", "--target-precision", "1.0", "--catalog", cat.path)
    assert code == 0, err
    assert "niqe: AUC 1.000" in out and "maniqa: AUC 1.000" in out
    cfg = load_config(_config(tmp_path, out))
    rules = {r.metric: r for r in cfg.policy.review.rules}
    assert rules["niqe"].max == pytest.approx(5.0) and rules["maniqa"].min == pytest.approx(0.44)


def test_report_is_one_self_contained_page_with_figures(scored, tmp_path: Path, cli):
    from db.accounts import add_reviewer
    from db.review import record_vote

    cat, ids = scored
    # Real verdicts through the review engineer's two-reviewer rule (accept = two accepts).
    for name in ("ann", "bob"):
        add_reviewer(cat, name, "reviewer", "correct horse battery")
    for i, image_id in enumerate(ids[:6]):
        for name in ("ann", "bob"):
            record_vote(cat, image_id, name, "accept" if i % 2 == 0 else "reject")
    assert cli("select", "--stage", "quality", "--catalog", cat.path)[0] == 0
    out = tmp_path / "report"
    code, _, err = cli("report", "--out", out, "--catalog", cat.path)
    assert code == 0, err
    page = (out / "report.html").read_text()
    for name in (
        "funnel.png",
        "hist_niqe.png",
        "montage_niqe.png",
        "montage_maniqa.png",
        "roc.png",
    ):
        assert (out / name).stat().st_size > 1000
    assert page.count("data:image/png;base64,") == len(list(out.glob("*.png")))
    assert not re.search(r"""src="(?!data:)""", page)  # nothing loaded from elsewhere
    assert "whole scored pool" in page and f"source: {tmp_path / 'pool'}" in page
    assert "[[policy.review.rules]]" in page or "no cut reaches" in page
    assert "<td>ann</td><td>6</td><td>3</td>" in page  # reviewer statistics from the votes
    assert "kappa between first and second vote" in page


def test_metric_directions_match_the_scorer_registry():
    from curation.scoring.scorers import list_scorers
    from hfaid_core.settings.policy import LOWER_BETTER

    specs = {s.name: s.lower_better for s in list_scorers()}
    assert set(LOWER_BETTER) <= set(specs)
    assert {m: specs[m] for m in LOWER_BETTER} == LOWER_BETTER


@pytest.mark.browser
def test_report_renders_funnel_and_montages_in_chromium(scored, tmp_path: Path, cli):
    from playwright.sync_api import sync_playwright

    from tests.conftest import chromium_path

    browser_path = chromium_path()
    if browser_path is None:
        pytest.skip("chromium not installed")
    cat, _ = scored
    assert cli("select", "--stage", "quality", "--catalog", cat.path)[0] == 0
    out = tmp_path / "report"
    assert cli("report", "--out", out, "--catalog", cat.path)[0] == 0
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=browser_path,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto((out / "report.html").as_uri())
        sizes = page.evaluate(
            "() => Array.from(document.images).map(i => [i.alt, i.naturalWidth, i.complete])"
        )
        shown = {alt: width for alt, width, complete in sizes if complete}
        assert (
            shown["funnel"] > 300 and shown["montage niqe"] > 300 and shown["montage maniqa"] > 300
        )
        page.locator("#montages").scroll_into_view_if_needed()
        page.screenshot(path=str(tmp_path / "report_full.png"), full_page=True)
        browser.close()
    shot = Path(tmp_path / "report_full.png")
    assert shot.stat().st_size > 20000
    if os.environ.get("HFAID_SCREENSHOT_DIR"):  # keep it for a human to look at
        Path(os.environ["HFAID_SCREENSHOT_DIR"], "report.png").write_bytes(shot.read_bytes())
