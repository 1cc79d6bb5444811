"""Contract: the local and the Ray engine score the same pool into the same catalog rows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import write_photo_pool

pytest.importorskip("ray")


def _scores(cli, catalog: Path) -> list[tuple]:
    from db.catalog import Catalog

    with Catalog(catalog).connect(read_only=True) as con:
        return con.execute(
            "SELECT s.image_id, metric, value, version FROM scores s ORDER BY 1, 2"
        ).fetchall()


@pytest.mark.slow
def test_local_and_ray_engines_write_the_same_scores(cli, tmp_path):
    pool = tmp_path / "pool"
    write_photo_pool(pool, 8, size=(128, 104))
    config = tmp_path / "c.toml"
    config.write_text("[runner]\nshard_size = 3\n")
    results = {}
    for engine in ("local", "ray"):
        catalog = tmp_path / f"{engine}.duckdb"
        code, _, err = cli("ingest", pool, "--catalog", catalog, "--workers", "1")
        assert code == 0, err
        code, out, err = cli(
            "score",
            "--metrics",
            "niqe,brisque",
            "--stage-input",
            "all",
            "--device",
            "cpu",
            "--engine",
            engine,
            "--workers",
            "2",
            "--catalog",
            catalog,
            "--config",
            config,
        )
        assert code == 0, err
        assert "waiting for decoded images" in out  # the workers' timings came back
        results[engine] = _scores(cli, catalog)
    assert len(results["local"]) == 16
    assert [r[:2] + r[3:] for r in results["local"]] == [r[:2] + r[3:] for r in results["ray"]]
    for a, b in zip(results["local"], results["ray"], strict=True):
        assert a[2] == pytest.approx(b[2], rel=1e-6)


def test_actors_of_one_node_are_counted_to_share_its_shared_memory():
    from curation.runner_ray import actors_per_node

    gpu_node = {"CPU": 96.0, "GPU": 8.0, "object_store_memory": 2e10}
    assert actors_per_node(gpu_node, gpu=True, concurrency=16) == 8
    assert actors_per_node(gpu_node, gpu=True, concurrency=3) == 3
    assert actors_per_node(gpu_node, gpu=False, concurrency=200) == 96
    assert actors_per_node({"CPU": 4.0}, gpu=True, concurrency=4) == 1  # no GPU here: none run


def test_ray_gpu_actors_keep_their_decode_workers_and_cpu_processes_decode_in_process():
    from curation.score import ScoreSettings, settings_per_process

    gpu = ScoreSettings(metrics=("clipiqa",), device="cuda", decode_workers=8)
    assert settings_per_process(gpu, 4, "ray") == gpu
    local_gpu = settings_per_process(gpu, 4, "local")
    assert local_gpu.decode_workers == 0 and local_gpu.threads >= 1
    cpu = ScoreSettings(metrics=("niqe",), device="cpu", decode_workers=2)
    assert settings_per_process(cpu, 2, "ray").decode_workers == 0
    assert settings_per_process(cpu, 1, "ray") == cpu


@pytest.mark.slow
def test_an_actor_that_cannot_score_fails_the_job_with_its_own_message(tmp_path):
    """An actor whose scorer version differs from the job's (another pyiqa or other weights on
    a cluster node) must stop the job with that message, not a Ray traceback, and write nothing."""
    from functools import partial

    from curation.errors import HfaidError
    from curation.runner import ShardJob
    from curation.runner_ray import run_job_ray
    from curation.score import ScoreSettings, ScoreWorker, path_items

    paths = write_photo_pool(tmp_path / "pool", 2, size=(96, 80))
    settings = ScoreSettings(metrics=("niqe",), versions={"niqe": "pyiqa-0.0.1+none"})
    merged: list[Path] = []
    job = ShardJob(
        name="score-test",
        work_dir=tmp_path / "work",
        pending=lambda: path_items(paths, ("niqe",)),
        worker_factory=partial(ScoreWorker, settings),
        merge=lambda files: merged.extend(files) or 0,
        shard_size=1,
    )
    with pytest.raises(HfaidError, match=r"niqe computes as version pyiqa-.* but the job expects "
                                         r"pyiqa-0\.0\.1\+none"):  # fmt: skip
        run_job_ray(job, device="cpu", actors=1)
    assert merged == [] and not list((tmp_path / "work" / "score-test").glob("*.parquet"))


@pytest.mark.slow
def test_a_gpu_job_from_a_head_without_a_gpu_gets_its_versions_from_a_cluster_gpu(
    cli, tmp_path
):
    """A Ray head node often has no GPU, and the versions name the GPU's half precision: a task
    on a GPU of the cluster computes them. A local cluster that declares one GPU it does not
    have runs that task, which reports from its node that it has no CUDA device: one line, no
    traceback. (Before, the head refused the job for its own lack of a GPU.) A cluster without
    GPUs is refused before any work."""
    import ray
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the head would compute the versions itself")
    pool, catalog = tmp_path / "pool", tmp_path / "c.duckdb"
    write_photo_pool(pool, 2, size=(128, 104))
    code, _, err = cli("ingest", pool, "--catalog", catalog, "--workers", "1")
    assert code == 0, err
    score = ("score", "--metrics", "niqe", "--stage-input", "all", "--device", "cuda",
             "--engine", "ray", "--catalog", catalog)  # fmt: skip
    for gpus, message in ((0, "the Ray cluster has no GPUs"),
                          (1, r"no CUDA device is available here .*\(Ray node ")):  # fmt: skip
        ray.init(num_cpus=1, num_gpus=gpus, include_dashboard=False, log_to_driver=False)
        try:
            code, _, err = cli(*score)
        finally:
            ray.shutdown()
        assert code != 0 and "Traceback" not in err
        assert re.search(message, err), err
    assert _scores(cli, catalog) == []
