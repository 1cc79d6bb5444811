"""Contract: the local and the Ray engine score the same pool into the same catalog rows."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_photo_pool

pytest.importorskip("ray")


REPO = Path(__file__).resolve().parents[1]
# `hfaid ARGS...` in a Python of its own, after `ray.init(num_cpus=1, num_gpus=N)` when N >= 0.
_CLI_SCRIPT = """
import sys
gpus = int(sys.argv[1])
if gpus >= 0:
    import ray
    ray.init(num_cpus=1, num_gpus=gpus, include_dashboard=False, log_to_driver=False)
from hfaid.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _in_own_process(script: str, *args: object) -> subprocess.CompletedProcess:
    """A Ray driver in a process of its own, as a user runs one. One process that starts and
    stops several local clusters can lose an old cluster's GCS connection, and Ray then ends
    that process itself (exit 1, no Python exception): it ended a CI run's pytest once."""
    return subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=REPO,
    )


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
        done = _in_own_process(
            _CLI_SCRIPT, -1, "score", "--metrics", "niqe,brisque", "--stage-input", "all",
            "--device", "cpu", "--engine", engine, "--workers", 2, "--catalog", catalog,
            "--config", config,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        assert "waiting for decoded images" in done.stdout  # the workers' timings came back
        results[engine] = _scores(cli, catalog)
    assert len(results["local"]) == 16
    assert [r[:2] + r[3:] for r in results["local"]] == [r[:2] + r[3:] for r in results["ray"]]
    for a, b in zip(results["local"], results["ray"], strict=True):
        assert a[2] == pytest.approx(b[2], rel=1e-6)


def test_actors_of_one_node_are_counted_to_share_its_shared_memory():
    from hfaid_core.runner_ray import actors_per_node

    gpu_node = {"CPU": 96.0, "GPU": 8.0, "object_store_memory": 2e10}
    assert actors_per_node(gpu_node, gpu=True, concurrency=16) == 8
    assert actors_per_node(gpu_node, gpu=True, concurrency=3) == 3
    assert actors_per_node(gpu_node, gpu=False, concurrency=200) == 96
    assert actors_per_node({"CPU": 4.0}, gpu=True, concurrency=4) == 1  # no GPU here: none run


def test_ray_gpu_actors_keep_their_decode_workers_and_cpu_processes_decode_in_process():
    from curation.scoring.job import ScoreSettings, settings_per_process

    gpu = ScoreSettings(metrics=("clipiqa",), device="cuda", decode_workers=8)
    assert settings_per_process(gpu, 4, "ray") == gpu
    local_gpu = settings_per_process(gpu, 4, "local")
    assert local_gpu.decode_workers == 0 and local_gpu.threads >= 1
    cpu = ScoreSettings(metrics=("niqe",), device="cpu", decode_workers=2)
    assert settings_per_process(cpu, 2, "ray").decode_workers == 0
    assert settings_per_process(cpu, 1, "ray") == cpu


_MISMATCHED_VERSION_SCRIPT = """
import sys
from functools import partial
from pathlib import Path
from hfaid_core.errors import HfaidError
from hfaid_core.runner import ShardJob
from hfaid_core.runner_ray import run_job_ray
from curation.scoring.job import ScoreSettings, ScoreWorker, path_items
paths = sorted(Path(sys.argv[1]).glob("*.jpg"))
settings = ScoreSettings(metrics=("niqe",), versions={"niqe": "pyiqa-0.0.1+none"})
merged = []
job = ShardJob(
    name="score-test",
    work_dir=Path(sys.argv[2]),
    pending=lambda: path_items(paths, ("niqe",)),
    worker_factory=partial(ScoreWorker, settings),
    merge=lambda files: merged.extend(files) or 0,
    shard_size=1,
)
try:
    run_job_ray(job, device="cpu", actors=1)
except HfaidError as exc:
    print("HfaidError:", exc)
print("merged", len(merged))
"""


@pytest.mark.slow
def test_an_actor_that_cannot_score_fails_the_job_with_its_own_message(tmp_path):
    """An actor whose scorer version differs from the job's (another pyiqa or other weights on
    a cluster node) must stop the job with that message, not a Ray traceback, and write nothing."""
    write_photo_pool(tmp_path / "pool", 2, size=(96, 80))
    done = _in_own_process(_MISMATCHED_VERSION_SCRIPT, tmp_path / "pool", tmp_path / "work")
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"HfaidError: niqe computes as version pyiqa-.* but the job expects "
                     r"pyiqa-0\.0\.1\+none", done.stdout), done.stdout  # fmt: skip
    assert done.stdout.splitlines()[-1] == "merged 0"
    assert not list((tmp_path / "work" / "score-test").rglob("*.parquet"))


@pytest.mark.slow
def test_a_gpu_job_from_a_head_without_a_gpu_gets_its_versions_from_a_cluster_gpu(
    cli, tmp_path
):
    """A Ray head node often has no GPU, and the versions name the GPU's half precision: a task
    on a GPU of the cluster computes them. A local cluster that declares one GPU it does not
    have runs that task, which reports from its node that it has no CUDA device: one line, no
    traceback. (Before, the head refused the job for its own lack of a GPU.) A cluster without
    GPUs is refused before any work."""
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
        done = _in_own_process(_CLI_SCRIPT, gpus, *score)
        assert done.returncode != 0 and "Traceback" not in done.stderr
        assert re.search(message, done.stderr), done.stderr[-2000:]
    assert _scores(cli, catalog) == []
