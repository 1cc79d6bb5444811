"""Score-input decoding and decode workers: EXIF, libjpeg-turbo, reused buffers, /dev/shm."""

from __future__ import annotations

import dataclasses
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from curation.scoring.job import ScoreSettings, ScoreWorker, path_items, scores_for_paths
from curation.scoring.scorers.base import InputPolicy
from curation.scoring.scorers.inputs import ORIENTATION, _turbo_jpeg, load_for_policy
from hfaid_core.shm_buffers import MAX_POOLED, ReturnedBuffers, SharedBuffers, workers_footprint
from tests.conftest import in_small_shm, skip_without_private_shm, write_photo_pool

FULL = InputPolicy(mode="full", min_side=1)


def _reference(path: Path) -> np.ndarray:
    """What the decode must produce: EXIF applied, RGB, channels first."""
    with Image.open(path) as img:
        return np.asarray(ImageOps.exif_transpose(img).convert("RGB")).transpose(2, 0, 1)


def _odd_files(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    photo = Image.open(write_photo_pool(folder / "src", 1, size=(96, 64))[0]).convert("RGB")
    files = {}
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # "rotate 90 CW to display": decoded 96x64 becomes 64x96
    files["rotated.jpg"] = lambda p: photo.save(p, exif=exif.tobytes(), quality=95)
    files["gray.png"] = lambda p: photo.convert("L").save(p)
    files["palette.png"] = lambda p: photo.convert("P").save(p)
    files["rgba.png"] = lambda p: photo.convert("RGBA").save(p)
    files["cmyk.jpg"] = lambda p: photo.convert("CMYK").save(p, quality=95)
    paths = []
    for name, write in files.items():
        write(folder / name)
        paths.append(folder / name)
    return paths


def test_decode_applies_exif_orientation_and_converts_every_mode_to_rgb(tmp_path):
    for path in _odd_files(tmp_path):
        got = load_for_policy(str(path), FULL)
        assert got.dtype == torch.uint8 and got.is_contiguous(), path.name
        assert np.array_equal(got.numpy(), _reference(path)), path.name
    rotated = load_for_policy(str(tmp_path / "rotated.jpg"), FULL)
    assert tuple(rotated.shape) == (3, 96, 64)


def test_libjpeg_turbo_decode_matches_pillow_for_every_exif_orientation(tmp_path):
    """The fast JPEG path (RGB straight from libjpeg-turbo, orientation applied as array views)
    gives Pillow's exact pixels: colour and grayscale, progressive, 4:4:4 and 4:2:0, EXIF 1-8.
    CMYK JPEGs (libjpeg-turbo converts them differently) go through Pillow."""
    photo = Image.open(write_photo_pool(tmp_path / "src", 1, size=(96, 64))[0]).convert("RGB")
    cases = []
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[ORIENTATION] = orientation
        path = tmp_path / f"o{orientation}.jpg"
        photo.save(path, exif=exif.tobytes(), quality=90)
        cases.append((path, orientation))
    for name, image, options in (
        ("progressive.jpg", photo, {"progressive": True}),
        ("444.jpg", photo, {"subsampling": 0}),
        ("gray.jpg", photo.convert("L"), {}),
    ):
        image.save(tmp_path / name, quality=90, **options)
        cases.append((tmp_path / name, 1))
    for path, orientation in cases:
        assert _turbo_jpeg(str(path), orientation) is not None, path.name  # the fast path
        got = load_for_policy(str(path), FULL)
        assert np.array_equal(got.numpy(), _reference(path)), path.name
    photo.convert("CMYK").save(tmp_path / "cmyk.jpg")
    cmyk = load_for_policy(str(tmp_path / "cmyk.jpg"), FULL)
    assert np.array_equal(cmyk.numpy(), _reference(tmp_path / "cmyk.jpg"))


def test_decode_workers_reuse_buffers_and_never_overwrite_one_still_in_use(tmp_path):
    """Real DataLoader workers: every piece holds its own images' pixels, including a piece
    the model's side keeps (not handed back) for the whole run, and the workers recycle a
    few shared buffers instead of creating one per piece."""
    paths = write_photo_pool(tmp_path / "a", 24, size=(120, 80))
    paths += write_photo_pool(tmp_path / "b", 12, size=(64, 72))
    paths += _odd_files(tmp_path / "odd")
    worker = ScoreWorker(ScoreSettings(metrics=("brisque",), decode_workers=2))
    loader, sampler = worker._loader(FULL, 2)
    sampler.batches = [[(i, str(paths[i])) for i in range(k, min(k + 2, len(paths)))]
                       for k in range(0, len(paths), 2)]
    kept, storages, pieces = None, set(), 0
    for piece in loader:
        pieces += 1
        assert not piece.failures
        for indices, stacked in piece.groups:
            storages.add(stacked.untyped_storage().data_ptr())
            for k, index in enumerate(indices):
                assert np.array_equal(stacked[k].numpy(), _reference(paths[index])), index
        if kept is None:
            kept = piece  # held to the end: its worker must not reuse its buffer
        else:
            worker.returned.hand_back(piece.flag)
    for indices, stacked in kept.groups:
        for k, index in enumerate(indices):
            assert np.array_equal(stacked[k].numpy(), _reference(paths[index]))
    assert pieces == len(sampler.batches)
    assert len(storages) <= 2 * MAX_POOLED < pieces


def test_scores_with_decode_workers_equal_scores_decoded_in_process(tmp_path):
    paths = write_photo_pool(tmp_path / "a", 20, size=(120, 80))
    paths += write_photo_pool(tmp_path / "b", 6, size=(64, 72)) + _odd_files(tmp_path / "odd")

    def scores(decode_workers: int) -> dict[str, float]:
        settings = ScoreSettings(metrics=("brisque",), batch_size=3, decode_workers=decode_workers)
        table = scores_for_paths(paths, settings)
        return {r["image_id"]: r["value"] for r in table.to_pylist()}

    in_process, with_workers = scores(0), scores(2)
    assert len(in_process) == len(paths) and None not in in_process.values()
    assert with_workers == in_process


def test_buffer_pool_reuses_released_buffers_and_evicts_the_smallest_when_full():
    pool, returned = SharedBuffers(), ReturnedBuffers(limit=4)

    def storage(tensor: torch.Tensor) -> int:
        return tensor.untyped_storage().data_ptr()

    first, first_flag = pool.take(1000)
    second, _ = pool.take(1000)
    assert storage(first) != storage(second)  # the first is still in use
    assert first.is_shared() and int(first_flag) == 1
    returned.hand_back(first_flag)
    again, again_flag = pool.take(900)  # fits the released buffer
    assert storage(again) == storage(first) and int(again_flag) == 1
    held = [pool.take(100 * (k + 1)) for k in range(MAX_POOLED - 2)]
    assert len(pool.buffers) == MAX_POOLED
    returned.hand_back(held[0][1])  # the smallest buffer, released
    big, _ = pool.take(10_000)  # no released buffer fits: a new one replaces the smallest
    assert len(pool.buffers) == MAX_POOLED
    assert storage(held[0][0]) not in {storage(b) for b in pool.buffers}
    assert storage(big) in {storage(b) for b in pool.buffers}
    assert len(returned.mapped) <= 4


def test_decode_workers_shrink_to_what_fits_in_shared_memory_with_one_warning(tmp_path, capsys):
    """A worker that runs out of /dev/shm fails the job (Docker's default is 64 MB): a shard
    gets only as many decode workers as its pieces fit in 3/4 of it, down to decoding in the
    model's process, with the same scores and one warning."""
    paths = write_photo_pool(tmp_path / "a", 6, size=(120, 80))
    items = path_items(paths, ("brisque",))
    settings = ScoreSettings(metrics=("brisque",), batch_size=3, decode_workers=2)
    need = workers_footprint(2, 2 * 3 * 80 * 120)  # batches of 3 split as pieces of 2 and 1

    def scores(table) -> dict[str, float]:
        return {r["image_id"]: r["value"] for r in table.to_pylist()}

    expected = scores(ScoreWorker(dataclasses.replace(settings, decode_workers=0)).process(items))
    for shm_bytes, workers, warned in ((need * 4 // 3 + 8, 2, False), (need, 1, True),
                                        (need // 2, 0, True)):
        worker = ScoreWorker(settings)
        worker.shm_bytes = shm_bytes
        assert scores(worker.process(items)) == expected
        assert scores(worker.process(items)) == expected
        assert [count for _, count in worker.loaders] == [workers], shm_bytes
        warning = capsys.readouterr().err
        assert warning.count("/dev/shm") == int(warned) and ("--shm-size" in warning) == warned

    # Smaller images on the same worker: the full count again, and the 1-worker loader stops.
    small_paths = write_photo_pool(tmp_path / "b", 6, size=(40, 40))
    worker = ScoreWorker(settings)
    worker.shm_bytes = need
    worker.process(items)
    assert [count for _, count in worker.loaders] == [1]
    assert len(worker.process(path_items(small_paths, ("brisque",)))) == 6
    assert [count for _, count in worker.loaders] == [2]


_SMALL_SHM_SCRIPT = """
import sys
from pathlib import Path
from curation.scoring.job import ScoreSettings, ScoreWorker, path_items
paths = sorted(Path(sys.argv[1]).glob("*.jpg"))
worker = ScoreWorker(ScoreSettings(metrics=("brisque",), batch_size=16, decode_workers=2))
table = worker.process(path_items(paths, ("brisque",)))
print(sum(r["status"] == "ok" for r in table.to_pylist()), len(paths))
"""


def _run_in_small_shm(tmp_path: Path, script_text: str, argument: Path):
    """The script, run with this repository importable, in a private 24 MB /dev/shm."""
    script = tmp_path / "script.py"
    script.write_text(script_text)
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        in_small_shm(f"{shlex.quote(sys.executable)} {script} {shlex.quote(str(argument))}"),
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(repo)},
        cwd=repo,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_a_real_24_mb_dev_shm_scores_everything_with_a_warning(tmp_path):
    """As in a container started without --shm-size: 2 workers cannot even allocate shared
    memory for batches of these 2.6 MB images; the job decodes in-process instead."""
    skip_without_private_shm()
    write_photo_pool(tmp_path / "pool", 32, size=(1080, 800))
    done = _run_in_small_shm(tmp_path, _SMALL_SHM_SCRIPT, tmp_path / "pool")
    assert done.stdout.split() == ["32", "32"]
    assert "/dev/shm holds 24 MiB" in done.stderr and "--shm-size" in done.stderr


_KILLED_JOB_SCRIPT = """
import os, signal, subprocess, sys, time
job = subprocess.Popen(
    [sys.executable, "-m", "hfaid.cli", "score", "--metrics", "niqe", "--stage-input", "all",
     "--device", "cpu", "--workers", "1", "--decode-workers", "2", "--catalog", sys.argv[1]],
    start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
)
def torch_segments():  # (multiprocessing's semaphores also pass through /dev/shm, briefly)
    return [n for n in os.listdir("/dev/shm") if n.startswith("torch_")]
deadline = time.monotonic() + 120
while not torch_segments() and job.poll() is None and time.monotonic() < deadline:
    time.sleep(0.02)
named = torch_segments()
try:
    os.killpg(job.pid, signal.SIGKILL)
except ProcessLookupError:  # the job ended first
    pass
job.wait()
deadline = time.monotonic() + 30
while torch_segments() and time.monotonic() < deadline:
    time.sleep(0.1)
print(len(named), len(torch_segments()))
"""


def test_decode_buffers_go_by_name_and_a_killed_job_leaves_none_in_dev_shm(cli, tmp_path):
    """Workers share their buffers by name (`share_buffers_by_name`: no round trip to the
    worker per piece), so named segments live in /dev/shm while a job runs. A job killed with
    SIGKILL, workers and all, must not leave them there: /dev/shm is memory."""
    skip_without_private_shm()
    write_photo_pool(tmp_path / "pool", 400, size=(256, 192))
    catalog = tmp_path / "k.duckdb"
    code, _, err = cli("ingest", tmp_path / "pool", "--catalog", catalog, "--workers", "1")
    assert code == 0, err
    done = _run_in_small_shm(tmp_path, _KILLED_JOB_SCRIPT, catalog)
    named, left = (int(v) for v in done.stdout.split())
    assert named >= 1  # the workers' buffers, by name
    assert left == 0


def test_without_a_writable_temp_dir_workers_keep_descriptors_and_score_quietly(
    tmp_path, monkeypatch, capfd
):
    """torch_shm_manager needs a temp dir for its socket; without one, sharing by name fails
    in every worker (the job would stop with a worker traceback), so they keep descriptors."""
    monkeypatch.setenv("TMPDIR", str(tmp_path / "missing"))
    paths = write_photo_pool(tmp_path / "a", 6, size=(120, 80))
    settings = ScoreSettings(metrics=("brisque",), decode_workers=2)
    table = scores_for_paths(paths, settings)
    assert [r["status"] for r in table.to_pylist()] == ["ok"] * 6
    assert "torch_shm_manager" not in capfd.readouterr().err
