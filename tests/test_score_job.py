"""`hfaid score` / `hfaid weights`: stage input, skip-if-present, errors, kill -9, offline."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

from curation.scoring.job import ScoreSettings, size_buckets
from curation.scoring.scorers import random_weights as rw
from curation.scoring.scorers.inputs import load_for_policy
from curation.scoring.scorers.precision import cpu_has_native_bf16
from db.catalog import Catalog
from db.outcomes import write_outcomes
from tests.conftest import write_photo_pool


def _rows(catalog: Catalog, sql: str) -> list[tuple]:
    with catalog.connect(read_only=True) as con:
        return con.execute(sql).fetchall()


def _ingest(cli, folder: Path, catalog: Catalog) -> None:
    code, _, err = cli("ingest", folder, "--catalog", catalog.path, "--workers", "1")
    assert code == 0, err


def test_score_cli_scores_stage_passers_once_and_records_outcomes(cli, catalog, tmp_path):
    pool = tmp_path / "pool"
    write_photo_pool(pool, 6, size=(128, 112))
    _ingest(cli, pool, catalog)
    ids = [r[0] for r in _rows(catalog, "SELECT image_id FROM images ORDER BY image_id")]
    passed = ids[:4]
    write_outcomes(
        catalog,
        pa.table(
            {
                "image_id": ids,
                "stage": ["dedup"] * 6,
                "status": ["pass"] * 4 + ["reject"] * 2,
                "reason": [None] * 4 + ["near_duplicate"] * 2,
                "detail": [None] * 6,
            }
        ),
        run_id=0,
    )

    code, out, err = cli(
        "score",
        "--metrics",
        "niqe,brisque",
        "--stage-input",
        "dedup",
        "--device",
        "cpu",
        "--batch-size",
        "3",
        "--catalog",
        catalog.path,
    )
    assert code == 0, err
    scored = _rows(catalog, "SELECT image_id, metric, value FROM scores ORDER BY 1, 2")
    assert sorted({r[0] for r in scored}) == sorted(passed)
    assert [r[1] for r in scored] == ["brisque", "niqe"] * 4
    assert all(r[2] is not None and r[2] == r[2] for r in scored)
    outcomes = _rows(
        catalog, "SELECT status, count(*) FROM stage_outcomes WHERE stage = 'score' GROUP BY 1"
    )
    assert outcomes == [("pass", 4)]

    # Re-running skips (image, metric, version) already present.
    code, out, err = cli(
        "score",
        "--metrics",
        "niqe",
        "--stage-input",
        "dedup",
        "--device",
        "cpu",
        "--catalog",
        catalog.path,
    )
    assert code == 0, err
    assert _rows(catalog, "SELECT count(*) FROM scores") == [(8,)]
    runs = _rows(catalog, "SELECT counts FROM runs WHERE command = 'score' ORDER BY run_id")
    assert json.loads(runs[-1][0])["pending_images"] == 0


def test_bad_images_become_error_outcomes_with_reasons_not_tracebacks(cli, catalog, tmp_path):
    pool = tmp_path / "pool"
    paths = write_photo_pool(pool, 4, size=(128, 112))
    from PIL import Image

    Image.new("RGB", (64, 48), (90, 120, 30)).save(pool / "tiny.png")  # under NIQE's 96px
    _ingest(cli, pool, catalog)
    paths[0].write_bytes(paths[0].read_bytes()[:200])  # truncated after ingest
    paths[1].unlink()  # vanished after ingest

    code, _, err = cli(
        "score",
        "--metrics",
        "niqe",
        "--stage-input",
        "all",
        "--device",
        "cpu",
        "--catalog",
        catalog.path,
    )
    assert code == 0, err
    assert "Traceback" not in err
    reasons = dict(
        _rows(
            catalog,
            "SELECT reason, count(*) FROM stage_outcomes "
            "WHERE stage = 'score' AND status = 'error' GROUP BY 1",
        )
    )
    assert reasons == {"decode_failed": 1, "file_missing": 1, "too_small": 1}
    assert _rows(catalog, "SELECT count(*) FROM scores WHERE metric = 'niqe'") == [(2,)]


def test_unknown_stage_metric_and_missing_weights_are_one_line_errors(
    cli, catalog, tmp_path, monkeypatch
):
    pool = tmp_path / "pool"
    write_photo_pool(pool, 2, size=(128, 112))
    _ingest(cli, pool, catalog)
    monkeypatch.setenv("HFAID_WEIGHTS_DIR", str(tmp_path / "empty"))
    code, _, err = cli(
        "score", "--metrics", "maniqa", "--stage-input", "all", "--catalog", catalog.path
    )
    assert code == 2
    assert str(tmp_path / "empty" / "maniqa" / "ckpt_koniq10k.pt") in err
    assert "hfaid weights fetch maniqa" in err and "Traceback" not in err
    assert _rows(catalog, "SELECT count(*) FROM scores") == [(0,)]

    code, _, err = cli("score", "--metrics", "nope", "--catalog", catalog.path)
    assert code == 2 and "unknown metric 'nope'" in err
    code, _, err = cli(
        "score", "--metrics", "niqe", "--stage-input", "quality", "--catalog", catalog.path
    )
    assert code == 2 and "no image has passed stage 'quality'" in err
    rw.write_clipiqa(tmp_path / "w")
    code, _, err = cli(
        "score", "--metrics", "clipiqa", "--stage-input", "all", "--device", "cpu",
        "--dtype", "float16", "--weights-dir", tmp_path / "w", "--catalog", catalog.path,
    )  # fmt: skip
    assert code == 2 and "bfloat16 only" in err and "Traceback" not in err
    assert _rows(catalog, "SELECT count(*) FROM scores") == [(0,)]
    # Refused before any work even where nothing is pending or the metric ignores it.
    niqe = ("score", "--metrics", "niqe", "--stage-input", "all", "--catalog", catalog.path)
    assert cli(*niqe)[0] == 0
    for bad, needle in (("float16", "bfloat16 only"), ("half", "use auto, float32")):
        code, _, err = cli(*niqe, "--device", "cpu", "--dtype", bad)
        assert code == 2 and needle in err and "Traceback" not in err


def test_offline_subprocess_without_weights_exits_nonzero_naming_file_and_command(tmp_path):
    import os

    env = {**os.environ, "HFAID_WEIGHTS_DIR": str(tmp_path / "none")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hfaid.cli",
            "score",
            "--metrics",
            "maniqa",
            "--catalog",
            str(tmp_path / "c.duckdb"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "ckpt_koniq10k.pt" in proc.stderr and "hfaid weights fetch maniqa" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_weights_list_and_verify(cli, tmp_path):
    rw.write_musiq(tmp_path / "w", rw.TINY_ARCH["musiq"])
    code, out, err = cli("weights", "list", "--dir", tmp_path / "w", "--json")
    assert code == 0, err
    listed = {r["name"]: r for r in json.loads(out)}
    assert {"maniqa", "musiq", "clipiqa", "clipiqa+", "qalign"} <= set(listed)
    assert listed["musiq"]["present"] and not listed["maniqa"]["present"]
    code, out, err = cli("weights", "verify", "musiq", "--dir", tmp_path / "w")
    assert code == 0 and "musiq: ok" in out
    code, out, err = cli("weights", "verify", "maniqa", "--dir", tmp_path / "w")
    assert code == 2 and "hfaid weights fetch maniqa" in err


def test_learned_metric_through_the_cli_with_saved_random_weights(cli, catalog, tmp_path):
    """The whole path for a learned metric: weights dir -> registry -> batched job -> catalog."""
    pool = tmp_path / "pool"
    write_photo_pool(pool, 3, size=(96, 80))
    _ingest(cli, pool, catalog)
    weights = tmp_path / "w"
    rw.write_clipiqa(weights)
    code, _, err = cli(
        "score",
        "--metrics",
        "clipiqa",
        "--stage-input",
        "all",
        "--device",
        "cpu",
        "--weights-dir",
        weights,
        "--catalog",
        catalog.path,
    )
    assert code == 0, err
    rows = _rows(catalog, "SELECT value FROM scores WHERE metric = 'clipiqa'")
    assert len(rows) == 3 and all(0.0 <= r[0] <= 1.0 for r in rows)


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no bf16 arithmetic")
def test_half_precision_scores_are_their_own_version(cli, catalog, tmp_path):
    """A bf16 run does not skip float32 rows as already scored, nor a float32 run bf16 rows:
    their values differ, and which precision computed a score stays visible in the catalog."""
    pool = tmp_path / "pool"
    write_photo_pool(pool, 3, size=(96, 80))
    _ingest(cli, pool, catalog)
    weights = tmp_path / "w"
    rw.write_clipiqa(weights)

    def score(dtype: str) -> None:
        code, _, err = cli(
            "score", "--metrics", "clipiqa", "--stage-input", "all", "--device", "cpu",
            "--dtype", dtype, "--weights-dir", weights, "--catalog", catalog.path,
        )  # fmt: skip
        assert code == 0, err

    score("float32")
    score("bfloat16")
    score("float32")  # nothing left to do at either precision
    rows = _rows(catalog, "SELECT version, count(*), list(value ORDER BY image_id) FROM scores "
                          "GROUP BY version ORDER BY version")  # fmt: skip
    assert [(v.endswith("+bf16"), n) for v, n, _ in rows] == [(False, 3), (True, 3)]
    assert rows[1][0] == rows[0][0] + "+bf16"
    assert rows[1][2] == pytest.approx(rows[0][2], rel=0.05)


def test_scoring_processes_of_one_machine_divide_its_shared_memory(monkeypatch):
    """Ray actors set HFAID_NODE_PROCESSES (accelerate/torchrun: LOCAL_WORLD_SIZE); each
    process sizes its decode workers' buffers for its share, not for all of /dev/shm."""
    from curation.scoring.job import ScoreWorker
    from hfaid_core.shm_buffers import shared_memory_size

    total = shared_memory_size()
    if total is None:
        pytest.skip("no /dev/shm here")
    settings = ScoreSettings(metrics=("niqe",), device="cpu")
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.delenv("HFAID_NODE_PROCESSES", raising=False)
    assert ScoreWorker(settings).shm_bytes == total
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert ScoreWorker(settings).shm_bytes == total // 2
    monkeypatch.setenv("HFAID_NODE_PROCESSES", "8")
    assert ScoreWorker(settings).shm_bytes == total // 8
    monkeypatch.setenv("HFAID_NODE_PROCESSES", "many")  # unreadable: the next one counts
    assert ScoreWorker(settings).shm_bytes == total // 2


def test_a_worker_whose_scorer_has_another_version_than_the_job_refuses_to_start():
    from curation.scoring.job import ScoreWorker, metric_versions
    from hfaid_core.errors import HfaidError

    settings = ScoreSettings(metrics=("niqe", "brisque"))
    versions = metric_versions(settings)
    ScoreWorker(ScoreSettings(metrics=("niqe", "brisque"), versions=versions))  # the same: fine
    other = {**versions, "brisque": versions["brisque"] + "+bf16"}
    with pytest.raises(HfaidError, match="brisque computes as version .* but the job expects"):
        ScoreWorker(ScoreSettings(metrics=("niqe", "brisque"), versions=other))


def test_pending_images_come_grouped_by_shape_so_shards_batch(cli, catalog, tmp_path):
    """Sizes interleaved in content-hash order come out one shape after another (EXIF 5-8
    counted as decoded), so a shard of a pool of many sizes still fills its batches."""
    from PIL import Image

    from db.scoring import pending_scores

    pool = tmp_path / "pool"
    for size in [(96, 80), (80, 96), (112, 72)]:
        write_photo_pool(pool / f"{size[0]}x{size[1]}", 4, size=size)
    rotated = Image.open(next((pool / "96x80").iterdir())).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 80x96, decoded (rotated back) as 96x80
    rotated.save(pool / "rotated.jpg", exif=exif)
    _ingest(cli, pool, catalog)
    table = pending_scores(catalog, None, {"niqe": "v1"})
    assert table.column_names == [
        "image_id", "path", "width", "height", "exif_orientation", "missing"
    ]  # fmt: skip
    decoded = [
        (h, w) if o in (5, 6, 7, 8) else (w, h)
        for w, h, o in zip(*(table[c].to_pylist() for c in ("width", "height",
                                                           "exif_orientation")), strict=True)
    ]  # fmt: skip
    runs = [decoded[0]] + [b for a, b in zip(decoded, decoded[1:], strict=False) if a != b]
    assert sorted(runs) == [(80, 96), (96, 80), (112, 72)]  # each shape in one run
    assert decoded.count((96, 80)) == 5
    by_id = sorted(table["image_id"].to_pylist())
    assert table["image_id"].to_pylist() != by_id  # the order is not the content hash's


def test_metrics_sharing_a_decode_each_run_their_own_batch_size(tmp_path, monkeypatch):
    """Metrics that read the same full-size decode keep their own batch sizes (on a GPU,
    MANIQA's 4 used to hold CLIP-IQA and NIQE to 4 instead of 8): here NIQE at 1 and the
    same NIQE registered with a batch of 4, each giving the scores of NIQE at batch 1."""
    import dataclasses

    from curation.scoring.job import ScoreWorker, path_items
    from curation.scoring.scorers import _SPECS, Scorer, get_scorer_spec

    batched = dataclasses.replace(get_scorer_spec("niqe"), name="niqe_by_4", cpu_batch_size=4)
    monkeypatch.setitem(_SPECS, batched.name, batched)
    seen: list[tuple[str, int]] = []
    launch = Scorer.launch

    def counted(self, batch, prepared=False):  # the real forward, its batch size written down
        seen.append((self.name, batch.shape[0]))
        return launch(self, batch, prepared)

    monkeypatch.setattr(Scorer, "launch", counted)
    paths = write_photo_pool(tmp_path / "pool", 9, size=(112, 96))
    settings = ScoreSettings(metrics=("niqe", "niqe_by_4"), decode_workers=2)
    worker = ScoreWorker(settings)
    assert worker.decode_batch_size(list(worker.scorers.values())) == 4
    rows = worker.process(path_items(paths, settings.metrics)).to_pylist()
    assert sorted(n for m, n in seen if m == "niqe_by_4") == [1, 4, 4]
    assert [n for m, n in seen if m == "niqe"] == [1] * 9
    assert len(rows) == 18 and all(r["status"] == "ok" for r in rows)
    by_image: dict[str, dict[str, float]] = {}
    for row in rows:
        by_image.setdefault(row["image_id"], {})[row["metric"]] = row["value"]
    for values in by_image.values():
        assert values["niqe_by_4"] == pytest.approx(values["niqe"], rel=1e-9)


@pytest.mark.parametrize(
    ("metric", "sizes"),
    [
        ("musiq", [(96, 64), (128, 96), (100, 140)]),
        ("maniqa", [(240, 224), (256, 240), (230, 300)]),
    ],
)
def test_metrics_batch_images_of_any_size_with_per_image_scores(
    metric, sizes, tmp_path, monkeypatch
):
    """MUSIQ's tokens carry a mask and MANIQA's crops are 224 px whatever the size, so images
    of different sizes share a batch across decoded batches, each with the score it gets
    alone."""
    from curation.scoring.job import ScoreWorker, path_items
    from curation.scoring.scorers import Scorer, create_scorer

    seen: list[tuple[str, int, bool]] = []
    launch = Scorer.launch

    def counted(self, batch, prepared=False):  # the real forward, with its batch written down
        seen.append((self.name, batch.shape[0], prepared))
        return launch(self, batch, prepared)

    monkeypatch.setattr(Scorer, "launch", counted)
    paths = []
    for size in sizes:
        paths += write_photo_pool(tmp_path / f"{size[0]}x{size[1]}", 2, size=size)
    weights = tmp_path / "w"
    writer = rw.write_musiq if metric == "musiq" else rw.write_maniqa
    writer(weights, rw.TINY_ARCH[metric])
    arch = {metric: {"arch": rw.TINY_ARCH[metric]}}
    settings = ScoreSettings(metrics=(metric,), weights_dir=str(weights), batch_size=4,
                             decode_workers=2, options=arch)  # fmt: skip
    rows = ScoreWorker(settings).process(path_items(paths, settings.metrics)).to_pylist()
    assert sorted(seen) == [(metric, 2, True), (metric, 4, True)]  # sizes mixed, 6 images
    alone = create_scorer(metric, weights_dir=weights, arch=rw.TINY_ARCH[metric])
    assert len(rows) == 6 and all(r["status"] == "ok" for r in rows)
    for row in rows:
        image = load_for_policy(row["image_id"], alone.input_policy)[None]
        assert row["value"] == pytest.approx(alone.score(image)[0], rel=1e-4, abs=1e-5), row


def test_pending_images_of_one_96px_cell_come_together_for_niqe(cli, catalog, tmp_path):
    """With a metric that batches 96-px cells (NIQE), shapes of one cell come in one run, and
    each shape still in one run inside it, so shards hold whole cells."""
    from curation.scoring.job import batch_cell
    from db.scoring import pending_scores

    pool = tmp_path / "pool"
    sizes = [(200, 100), (210, 110), (230, 150), (300, 200), (310, 210), (100, 300)]
    for size in sizes:
        write_photo_pool(pool / f"{size[0]}x{size[1]}", 3, size=size)
    _ingest(cli, pool, catalog)
    cell = batch_cell(ScoreSettings(metrics=("clipiqa", "niqe")))
    assert cell == 96 and batch_cell(ScoreSettings(metrics=("clipiqa",))) == 1
    table = pending_scores(catalog, None, {"niqe": "v1", "clipiqa": "v1"}, cell)
    shapes = list(zip(table["width"].to_pylist(), table["height"].to_pylist(), strict=True))

    def runs(keys: list) -> list:
        return [keys[0]] + [b for a, b in zip(keys, keys[1:], strict=False) if a != b]

    assert sorted(runs(shapes)) == sorted(sizes)
    cells = [(w // 96, h // 96) for w, h in shapes]
    assert sorted(runs(cells)) == [(1, 3), (2, 1), (3, 2)]


def test_size_buckets_group_equal_shapes_and_cap_batch_size():
    shapes = [(10, 20), (30, 40), (10, 20), (10, 20), (30, 40)]
    assert size_buckets(shapes, 2) == [[0, 2], [3], [1, 4]]
    # (height, width), by area; with 96-px cells, the two shapes of cell (1, 2) come together
    shapes = [(100, 300), (120, 200), (190, 210), (120, 200)]
    assert size_buckets(shapes, 4) == [[1, 3], [0], [2]]
    assert size_buckets([(120, 200), (190, 210), (100, 300)], 4, cell=96) == [[0], [1], [2]]


def test_niqe_batches_sizes_of_one_96px_cell_with_per_image_scores(tmp_path, monkeypatch):
    """NIQE reads whole 96-px blocks only, so images whose sides round down to the same
    multiples of 96 share a batch, cropped, across decoded batches; BRISQUE, which reads every
    pixel, still batches equal shapes only. Every score equals the image scored alone."""
    from curation.scoring.job import ScoreWorker, path_items
    from curation.scoring.scorers import Scorer, create_scorer

    seen: list[tuple[str, tuple[int, ...]]] = []
    launch = Scorer.launch

    def counted(self, batch, prepared=False):  # the real forward, its batch's shape written down
        seen.append((self.name, tuple(batch.shape)))
        return launch(self, batch, prepared)

    monkeypatch.setattr(Scorer, "launch", counted)
    paths = []
    for size in [(200, 100), (210, 110), (230, 150), (300, 200)]:  # W x H: 3 in one cell
        paths += write_photo_pool(tmp_path / f"{size[0]}x{size[1]}", 2, size=size)
    settings = ScoreSettings(metrics=("niqe", "brisque"), batch_size=4, decode_workers=2)
    rows = ScoreWorker(settings).process(path_items(paths, settings.metrics)).to_pylist()
    niqe_batches = sorted(shape for m, shape in seen if m == "niqe")
    assert niqe_batches == [(2, 3, 96, 192), (2, 3, 192, 288), (4, 3, 96, 192)]
    assert sorted(shape[0] for m, shape in seen if m == "brisque") == [2, 2, 2, 2]
    assert len(rows) == 16 and all(r["status"] == "ok" for r in rows)
    alone = {m: create_scorer(m) for m in settings.metrics}
    tolerance = {"niqe": 1e-9, "brisque": 1e-3}  # float64 inside / float32 (batch-dependent)
    for row in rows:
        scorer = alone[row["metric"]]
        image = load_for_policy(row["image_id"], scorer.input_policy)[None]
        expected = scorer.score(image)[0]
        assert row["value"] == pytest.approx(expected, rel=tolerance[row["metric"]]), row


def _score_proc(catalog: Path, config: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hfaid.cli",
            "score",
            "--metrics",
            "niqe",
            "--stage-input",
            "all",
            "--device",
            "cpu",
            "--decode-workers",
            "0",
            "--catalog",
            str(catalog),
            "--config",
            str(config),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_kill_minus_nine_mid_run_then_rerun_leaves_no_duplicate_or_missing_rows(cli, tmp_path):
    pool = tmp_path / "pool"
    write_photo_pool(pool, 60, size=(112, 100))
    catalog = Catalog(tmp_path / "k.duckdb", lock_timeout_s=30)
    code, _, err = cli("ingest", pool, "--catalog", catalog.path, "--workers", "1")
    assert code == 0, err
    config = tmp_path / "c.toml"
    config.write_text("[runner]\nshard_size = 2\n[catalog]\nlock_timeout_s = 30\n")
    rng = random.Random(7)
    kills = 0
    for _ in range(3):
        proc = _score_proc(catalog.path, config)
        # Kill at a random moment after the first shard finished (not a fixed delay, which a
        # fast machine outruns and a slow one never reaches).
        _wait_for_first_shard(proc, catalog.work_dir)
        time.sleep(rng.uniform(0.0, 1.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
    assert kills >= 1, "the job finished before any kill; make the pool larger"
    final = _score_proc(catalog.path, config)
    assert final.wait(timeout=600) == 0, final.stderr.read()
    assert _rows(
        catalog, "SELECT count(*), count(DISTINCT image_id) FROM scores WHERE metric = 'niqe'"
    ) == [(60, 60)]
    assert (
        _rows(
            catalog,
            "SELECT image_id FROM scores GROUP BY image_id, metric, version HAVING count(*) > 1",
        )
        == []
    )
    assert _rows(catalog, "SELECT count(*) FROM stage_outcomes WHERE stage = 'score'") == [(60,)]


def _wait_for_first_shard(proc, work_dir: Path, timeout_s: float = 180.0) -> None:
    """Return once a shard result (or its temp file) exists, or the process has ended."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        if work_dir.exists() and any(p.suffix == ".parquet" for p in work_dir.rglob("*")):
            return
        time.sleep(0.05)


def test_settings_are_picklable_for_worker_processes():
    import pickle

    settings = ScoreSettings(metrics=("niqe",), options={"niqe": {}})
    assert pickle.loads(pickle.dumps(settings)) == settings


@pytest.mark.gpu
def test_gpu_runner_pins_pipelines_and_scores_like_the_cpu_runner(tmp_path, monkeypatch):
    """Pinned decode pieces, batches read one launch late: same rows as on CPU (fp32 both)."""
    import torch

    from curation.scoring.job import scores_for_paths

    # cuDNN convolutions default to TF32 (10-bit mantissa): true fp32 makes this a test of the
    # runner's bookkeeping (which score lands on which image), not of TF32 rounding.
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    paths = write_photo_pool(tmp_path / "pool", 9, size=(160, 128))
    paths += write_photo_pool(tmp_path / "pool2", 3, size=(96, 112))  # a second size bucket
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(paths[0].read_bytes()[:300])
    paths.append(broken)
    rw.write_musiq(tmp_path / "w", rw.TINY_ARCH["musiq"])
    common = dict(
        metrics=("niqe", "musiq"),
        dtype="float32",
        weights_dir=str(tmp_path / "w"),
        batch_size=4,
        decode_workers=2,
        options={"musiq": {"arch": rw.TINY_ARCH["musiq"]}},
    )

    def rows(device: str) -> dict[tuple[str, str], dict]:
        table = scores_for_paths(paths, ScoreSettings(device=device, **common))
        return {(r["image_id"], r["metric"]): r for r in table.to_pylist()}

    cpu, gpu = rows("cpu"), rows("cuda")
    assert cpu.keys() == gpu.keys() and len(cpu) == 2 * len(paths)
    for key, expected in cpu.items():
        got = gpu[key]
        assert (got["status"], got["reason"]) == (expected["status"], expected["reason"]), key
        if expected["value"] is not None:
            assert got["value"] == pytest.approx(expected["value"], rel=1e-3, abs=1e-4), key
    assert cpu[(str(broken), "niqe")]["status"] == "error"


def test_an_image_that_breaks_its_batch_costs_only_itself(tmp_path):
    """A flat image makes NIQE's SVD fail for its whole batch and BRISQUE return NaN: the
    batch is retried image by image, the others keep their scores, and every failure is a
    recorded reason. A file that cannot even be read for its size is a decode error."""
    from PIL import Image

    from curation.scoring.job import scores_for_paths

    paths = write_photo_pool(tmp_path / "pool", 3, size=(160, 128))
    flat = tmp_path / "flat.png"
    Image.new("RGB", (160, 128), (128, 128, 128)).save(flat)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(paths[0].read_bytes()[:300])
    settings = ScoreSettings(metrics=("niqe", "brisque"), batch_size=4, decode_workers=2)
    table = scores_for_paths([*paths, flat, broken], settings)
    rows = {(Path(r["image_id"]).name, r["metric"]): r for r in table.to_pylist()}
    assert len(rows) == 10
    assert (rows[("flat.png", "niqe")]["status"], rows[("flat.png", "niqe")]["reason"]) == (
        "error",
        "score_failed",
    )
    assert rows[("flat.png", "brisque")]["reason"] == "non_finite"
    assert {rows[("broken.jpg", m)]["reason"] for m in ("niqe", "brisque")} == {"decode_failed"}
    for path in paths:
        for metric in ("niqe", "brisque"):
            row = rows[(path.name, metric)]
            assert row["status"] == "ok" and row["value"] == row["value"], (path, metric)


def test_gpu_jobs_use_the_larger_gpu_shard_size():
    from hfaid_core.settings.score import ScoreConfig, shard_size_for

    assert shard_size_for("cuda", ScoreConfig().gpu_shard_size, 256) == 1024
    assert shard_size_for("cuda:1", 2048, 256) == 2048
    assert shard_size_for("cpu", 1024, 256) == 256
    assert shard_size_for("cuda", 0, 256) == 256  # 0 = the runner's shard size


def test_decode_workers_auto_gives_a_gpu_the_host_cores():
    import os

    from hfaid_core.settings.score import ScoreConfig, decode_workers_for

    auto = ScoreConfig().decode_workers
    assert decode_workers_for("cpu", auto) == 2
    assert decode_workers_for("cuda", auto) == min(8, max(1, (os.cpu_count() or 2) - 1))
    assert decode_workers_for("cuda:0", 3) == 3 and decode_workers_for("cuda", 0) == 0


def test_auto_decode_workers_are_resolved_by_the_worker_on_its_own_machine():
    """`-1` travels in the settings (to a Ray node, whose cores the head does not know) and the
    worker resolves it where it runs."""
    from curation.scoring.job import ScoreWorker
    from hfaid_core.settings.score import decode_workers_for

    settings = ScoreSettings(metrics=("niqe",), decode_workers=-1)
    assert ScoreWorker(settings).settings.decode_workers == decode_workers_for("cpu", -1) == 2
    in_process = ScoreSettings(metrics=("niqe",), decode_workers=0)
    assert ScoreWorker(in_process).settings.decode_workers == 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_score_job_reports_where_its_model_processes_spent_their_time(
    cli, catalog, tmp_path, workers
):
    """In-process (GPU jobs) and process-pool runs both sum their workers' timings into the
    summary and the run's record: what tells a user whether decoding or the model limits."""
    pool = tmp_path / "pool"
    write_photo_pool(pool, 6, size=(128, 112))
    _ingest(cli, pool, catalog)
    code, out, err = cli(
        "score", "--metrics", "niqe", "--stage-input", "all", "--device", "cpu",
        "--workers", workers, "--catalog", catalog.path,
    )
    assert code == 0, err
    assert "waiting for decoded images" in out
    counts = json.loads(_rows(catalog, "SELECT counts FROM runs WHERE command = 'score'")[0][0])
    seconds = counts["model_process_seconds"]
    assert set(seconds) == {"total", "decode_wait", "launch", "result_wait"}
    assert seconds["launch"] > 0  # NIQE's forwards run inside the launches on CPU
    parts = seconds["decode_wait"] + seconds["launch"] + seconds["result_wait"]
    assert parts <= seconds["total"] + 0.03  # each rounded to 0.01 s


def test_a_note_names_decoding_when_the_models_mostly_waited_for_images():
    from curation.scoring.timing import bottleneck_note, shares

    waited = {"total": 100.0, "decode_wait": 60.0, "launch": 30.0, "result_wait": 5.0}
    note = bottleneck_note(waited, decode_workers=8)
    assert note is not None and "60%" in note and "8 per model process" in note
    assert bottleneck_note({**waited, "decode_wait": 10.0}, decode_workers=8) is None
    assert bottleneck_note({"total": 5.0, "decode_wait": 4.0}, decode_workers=8) is None  # short
    assert bottleneck_note(waited, decode_workers=0) is None  # decoding in-process is its work
    assert shares(waited)["other (joining batches, result rows)"] == pytest.approx(0.05)
