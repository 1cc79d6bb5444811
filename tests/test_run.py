"""`hfaid run`: a recipe through the commands' own code, `--until`, the review wait and its
resume, weights checked before any work, optional steps; recipes checked before they run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from captioning.tiny_model import build_random_florence2
from curation.scoring.scorers import random_weights as rw
from db.accounts import add_reviewer
from db.catalog import Catalog
from db.images import images_passing
from db.review import record_vote
from hfaid.orchestrate import EXIT_WAITING
from hfaid.recipe import default_recipe_text, load_recipe
from tests.conftest import write_photo_pool
from tests.run_helpers import AESTHETIC, CONFIG, QUALITY, REVIEW_AND_AFTER, SELECTIONS, snapshot

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def qalign_weights(tmp_path_factory) -> Path:
    """A weights folder with a tiny random Q-Align in its real file layout."""
    folder = tmp_path_factory.mktemp("weights")
    rw.write_qalign(folder)
    return folder


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder with a 10-photo pool and the config the recipes run with."""
    write_photo_pool(tmp_path / "pool", 10, size=(192, 144))
    (tmp_path / "hfaid.toml").write_text(CONFIG)
    return tmp_path


def _write_recipe(project: Path, body: str, name: str = "recipe.toml") -> Path:
    path = project / name
    path.write_text(body)
    return path


def _run(cli, project: Path, recipe: Path, *extra: str, catalog: str = "hfaid.duckdb"):
    return cli("run", "--recipe", recipe, "--catalog", project / catalog,
               "--config", project / "hfaid.toml", *extra)


def test_run_until_quality_then_to_the_end_equals_the_commands_by_hand(
        project, qalign_weights, cli):
    recipe = _write_recipe(project, QUALITY + AESTHETIC.format(weights=qalign_weights,
                                                               optional="") + SELECTIONS)
    code, out, err = _run(cli, project, recipe, "--until", "quality")
    assert code == 0, err
    state = snapshot(project / "hfaid.duckdb")
    assert {o[1] for o in state["outcomes"]} == {"clean", "dedup", "score", "quality"}
    assert "step 5/5: select-quality" in out

    code, out, err = _run(cli, project, recipe)  # resumes: stage 1-2 have nothing left to do
    assert code == 0, err
    assert "step 6/8: score-aesthetic" in out and "done: 8 of 8 steps ran" in out
    by_run = snapshot(project / "hfaid.duckdb")
    assert {o[1] for o in by_run["outcomes"]} == {"clean", "dedup", "score", "quality",
                                                  "aesthetic", "review_queue"}
    assert {s[1] for s in by_run["scores"]} >= {"niqe", "qalign_aesthetic"}

    by_hand = project / "by-hand.duckdb"
    common = ["--catalog", by_hand, "--config", project / "hfaid.toml"]
    for argv in (["ingest", project / "pool", "--workers", "1"], ["clean", "--workers", "1"],
                 ["dedup"],
                 ["score", "--metrics", "niqe", "--stage-input", "dedup", "--device",
                  "cpu", "--decode-workers", "0"],
                 ["select", "--stage", "quality"],
                 ["score", "--metrics", "qalign_aesthetic", "--stage-input", "quality",
                  "--device", "cpu", "--decode-workers", "0", "--weights-dir", qalign_weights],
                 ["select", "--stage", "aesthetic"], ["select", "--stage", "review"]):
        assert cli(*argv, *common)[0] == 0, argv
    assert snapshot(by_hand) == by_run

    with Catalog(project / "hfaid.duckdb").connect(read_only=True) as con:
        runs = con.execute("SELECT status, counts FROM runs WHERE command = 'run' "
                           "ORDER BY run_id").fetchall()
    assert [r[0] for r in runs] == ["done", "done"]
    assert [s["step"] for s in json.loads(runs[1][1])["steps"]][-1] == "select-review"


def test_review_wait_then_resume_captions_and_exports(project, tmp_path_factory, cli):
    model = build_random_florence2(tmp_path_factory.mktemp("florence") / "tiny")
    recipe = _write_recipe(project, QUALITY + SELECTIONS + REVIEW_AND_AFTER.format(model=model))
    code, out, err = _run(cli, project, recipe)
    catalog = Catalog(project / "hfaid.duckdb")
    queue = images_passing(catalog, "review_queue").column("image_id").to_pylist()
    assert code == EXIT_WAITING, err
    assert f"waiting for reviews: {len(queue)} queued, 0 decided" in out
    assert "step 8/10: reviews" in out and "caption" not in out.split("step 8/10")[1]

    add_reviewer(catalog, "alice", "reviewer", "alice-password")
    add_reviewer(catalog, "bob", "reviewer", "bob-password")
    for image in queue[:-1]:  # both accept all but the last; two rejects settle that one
        record_vote(catalog, image, "alice", "accept")
        record_vote(catalog, image, "bob", "accept")
    record_vote(catalog, queue[-1], "alice", "reject", ["blur"])
    code, out, err = _run(cli, project, recipe)
    assert code == EXIT_WAITING and f"{len(queue)} queued, {len(queue) - 1} decided" in out
    record_vote(catalog, queue[-1], "bob", "reject", ["blur"])

    code, out, err = _run(cli, project, recipe)
    assert code == 0, err
    assert f"reviews: {len(queue)} queued, {len(queue)} decided" in out
    with catalog.connect(read_only=True) as con:
        captioned = con.execute("SELECT count(DISTINCT image_id) FROM captions").fetchone()[0]
        statuses = [r[0] for r in con.execute(
            "SELECT status FROM runs WHERE command = 'run' ORDER BY run_id").fetchall()]
    assert captioned == len(queue) - 1
    assert statuses == ["waiting", "waiting", "done"]
    manifest = json.loads((project / "export" / "manifest.json").read_text())
    assert manifest["counts"]["exported"] == len(queue) - 1


def test_missing_qalign_weights_stop_before_any_work(project, tmp_path, cli, monkeypatch):
    weights = tmp_path / "weights"
    for name, file in (("maniqa", "ckpt_koniq10k.pt"), ("clipiqa", "RN50.pt")):
        (weights / name).mkdir(parents=True)
        (weights / name / file).write_bytes(b"present")  # only Q-Align is missing
    monkeypatch.setenv("HFAID_WEIGHTS_DIR", str(weights))
    catalog = project / "hfaid.duckdb"
    code, out, err = cli("run", "--source", project / "pool", "--until", "aesthetic",
                         "--catalog", catalog)
    assert code == 2
    assert err.startswith("error: step score-aesthetic: weights for qalign_aesthetic (qalign): "
                          "missing file ")
    assert "run `hfaid weights fetch qalign`" in err and "optional = true" in err
    assert len(err.strip().splitlines()) == 1
    assert not catalog.exists() and out == ""  # nothing ran, nothing was created


def test_optional_aesthetic_step_without_weights_is_skipped_and_not_run(project, tmp_path,
                                                                        cli):
    recipe = _write_recipe(project, QUALITY + AESTHETIC.format(weights=tmp_path / "empty",
                                                               optional="optional = true")
                           + SELECTIONS)
    code, out, err = _run(cli, project, recipe)
    assert code == 0, err
    assert "skipped (optional step): weights for qalign_aesthetic (qalign): missing file" in out
    funnel = json.loads(cli("funnel", "--json", "--catalog", project / "hfaid.duckdb")[1])
    stages = {s["stage"]: s for s in funnel["stages"]}
    assert stages["aesthetic"]["not_run"] == "no scores for qalign_aesthetic"
    assert stages["aesthetic"]["passed"] == 0
    assert stages["aesthetic"]["passed_through"] == stages["quality"]["passed"]
    table = cli("funnel", "--catalog", project / "hfaid.duckdb")[1]
    assert "not run" in next(line for line in table.splitlines() if "aesthetic" in line)


@pytest.mark.parametrize("body, message", [
    ('[[step]]\ncommand = "score"\nmetric = "niqe"\n', "`hfaid score` has no option metric"),
    ('[[step]]\ncommand = "frobnicate"\n', "no hfaid command 'frobnicate'"),
    ('[[step]]\ncommand = "review"\n', "the step where people vote is `await-reviews`"),
    ('[[step]]\ncommand = "score"\nstage_input = "qualty"\n', "'qualty' is not a stage"),
    ('[[step]]\ncommand = "clean"\n[[step]]\ncommand = "clean"\n', "repeated: clean"),
    ('[[step]]\ncommand = "await-reviews"\nmin_decided = 2\n', "min_decided must be"),
    ('[steps]\n', "unknown section(s) steps"),
])
def test_a_bad_recipe_is_refused_before_anything_runs(body, message, project, cli):
    code, out, err = _run(cli, project, _write_recipe(project, body))
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (project / "hfaid.duckdb").exists()


def test_until_names_a_step_or_stage_and_the_built_in_recipe_is_the_papers(project, cli):
    recipe = _write_recipe(project, QUALITY)
    code, _, err = _run(cli, project, recipe, "--until", "aesthetic")
    assert code == 2 and "--until 'aesthetic' names no step or stage" in err
    code, out, _ = cli("run", "--print-recipe")
    assert code == 0 and out == default_recipe_text()
    paper = load_recipe(None)
    steps = {s.name: s for s in paper.steps}
    assert steps["score-quality"].options["metrics"] == ["maniqa", "clipiqa", "niqe"]
    assert steps["score-aesthetic"].options["metrics"] == ["qalign_aesthetic"]
    assert not steps["score-aesthetic"].optional  # stage 3 is on by default
    assert [s.stage for s in paper.steps] == [
        "ingest", "clean", "dedup", "score", "quality", "score", "aesthetic", "review_queue",
        "review", "caption", "export"]
