"""Clean shutdowns: SIGTERM to `hfaid review`, `hfaid score --workers 2` and `hfaid finetune`
leaves no process behind within 10 s, and the work resumes on re-run; dependency warnings are
silenced at the entry point, ours are not."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pyarrow as pa
import pytest

from db.captions import image_paths, write_source_captions
from db.catalog import Catalog
from tests.conftest import write_photo_pool

GONE_WITHIN_S = 10.0


def _hfaid(*args, **kwargs) -> subprocess.Popen:
    """`hfaid ARGS` in its own process group (as a shell job or a service would run it)."""
    return subprocess.Popen([sys.executable, "-m", "hfaid.cli", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, **kwargs)


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.add(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def _in_group(pgid: int) -> set[int]:
    found = set()
    for p in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(p.pid) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE:
                found.add(p.pid)
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass
    return found


def _descendants(pid: int) -> set[int]:
    return {c.pid for c in psutil.Process(pid).children(recursive=True)}


def _wait_for(condition, timeout: float, what: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"{what}: the command exited first: {proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def _terminate_and_check(proc: subprocess.Popen, children: set[int]) -> tuple[int, float]:
    """SIGTERM to the command only; then nothing of it may be left within GONE_WITHIN_S."""
    assert children, "the command had started no child process yet"
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=GONE_WITHIN_S)
    while _alive(children) or _in_group(proc.pid):
        assert time.monotonic() - started < GONE_WITHIN_S, (
            f"left behind: {_alive(children) | _in_group(proc.pid)}")
        time.sleep(0.1)
    return code, time.monotonic() - started


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_sigterm_stops_hfaid_review_and_its_server(catalog):
    port = _free_port()
    proc = _hfaid("review", "--port", port, "--catalog", catalog.path)
    _wait_for(lambda: _port_open(port), 120, "the review server", proc)
    code, _ = _terminate_and_check(proc, _descendants(proc.pid))
    assert code == 0  # a service stopped the way services are stopped
    assert not _port_open(port)
    with catalog.connect(read_only=True) as con:
        assert con.execute("SELECT status FROM runs WHERE command = 'review'").fetchall() == [
            ("done",)]


@pytest.mark.slow
def test_sigterm_mid_score_with_two_workers_then_rerun_completes(tmp_path, cli):
    write_photo_pool(tmp_path / "pool", 400, size=(128, 96))
    (tmp_path / "c.toml").write_text("[runner]\nshard_size = 4\n")
    db = tmp_path / "c.duckdb"
    common = ["--catalog", db, "--config", tmp_path / "c.toml"]
    assert cli("ingest", tmp_path / "pool", "--workers", "1", *common)[0] == 0
    score = ["score", "--metrics", "niqe", "--stage-input", "all", "--device", "cpu",
             "--workers", "2", "--decode-workers", "1", *common]
    proc = _hfaid(*score)
    results = Path(f"{db}.work")
    _wait_for(lambda: any(results.rglob("*.parquet")), 180, "a first shard result", proc)
    code, _ = _terminate_and_check(proc, _descendants(proc.pid))
    assert code == 128 + signal.SIGTERM, proc.stderr.read()
    with Catalog(db).connect(read_only=True) as con:
        assert con.execute("SELECT status FROM runs WHERE command = 'score'").fetchall() == [
            ("interrupted",)]
        before = con.execute("SELECT count(*) FROM scores").fetchone()[0]
    assert before < 400
    again = _hfaid(*score, "--json")
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert json.loads(out)["pending_images"] == 400 - before
    with Catalog(db).connect(read_only=True) as con:
        assert con.execute("SELECT count(DISTINCT image_id) FROM scores").fetchone()[0] == 400


@pytest.mark.slow
def test_sigterm_mid_finetune_stops_launcher_and_trainer_then_resume(tmp_path, cli):
    write_photo_pool(tmp_path / "pool", 8, size=(64, 48))
    db = tmp_path / "hfaid.duckdb"
    assert cli("ingest", tmp_path / "pool", "--workers", "1", "--catalog", db)[0] == 0
    ids = image_paths(Catalog(db)).column("image_id").to_pylist()
    write_source_captions(Catalog(db), pa.table({
        "image_id": ids, "source": ["test"] * len(ids),
        "caption": [f"a photo number {i}" for i in range(len(ids))]}), run_id=None)
    assert cli("export", "--out", tmp_path / "shards", "--status", "all", "--captions", "any",
               "--maxcount", "4", "--workers", "1", "--catalog", db)[0] == 0
    assert cli("tiny-sd", tmp_path / "sd")[0] == 0
    out = tmp_path / "refined"
    train = ["finetune", "--data", tmp_path / "shards", "--pretrained", tmp_path / "sd",
             "--output", out, "--resolution", "16", "--train-batch-size", "2",
             "--gradient-accumulation-steps", "1", "--checkpointing-steps", "2",
             "--dataloader-num-workers", "1", "--seed", "0", "--catalog", db]
    proc = _hfaid(*train, "--max-train-steps", "100000")
    log = out / "logs" / "train_log.jsonl"

    def past_step_two() -> bool:  # checkpoint-2 is saved before step 3 is logged
        return log.exists() and len(log.read_text().splitlines()) >= 3

    _wait_for(past_step_two, 300, "training step 3", proc)
    children = _descendants(proc.pid)  # the accelerate launcher, the trainer, its loader
    assert len(children) >= 2
    code, _ = _terminate_and_check(proc, children)
    assert code == 128 + signal.SIGTERM
    resumed = _hfaid(*train, "--max-train-steps", "4", "--resume-from-checkpoint",
                     "checkpoint-2")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert json.loads(log.read_text().splitlines()[-1])["step"] == 4


def test_dependency_warnings_are_silenced_at_the_entry_point_but_ours_are_not():
    script = (
        "import logging, warnings\n"
        "import hfaid.cli\n"
        "logging.getLogger('bitsandbytes.backends.cpu.ops').warning("
        "'Failed to load CPU gemm_4bit_forward from kernels-community: no network')\n"
        "warnings.warn_explicit('a dependency deprecation', FutureWarning, 'x.py', 1, "
        "module='transformers.configuration_utils')\n"
        "warnings.warn_explicit('our own warning', UserWarning, 'y.py', 1, "
        "module='curation.scoring.job')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "gemm_4bit_forward" not in result.stderr
    assert "a dependency deprecation" not in result.stderr
    assert "our own warning" in result.stderr
    shown = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           timeout=120, env={**os.environ, "HFAID_DEPENDENCY_WARNINGS": "1"})
    assert "a dependency deprecation" in shown.stderr
