"""Fine-tuning (RPR + ROPO): sampling shares, shards, bad input, training, resume, inference."""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from conftest import in_small_shm, skip_without_private_shm, write_photo_pool
from PIL import Image

from curation.demo.photos import colour_photos
from db.captions import image_paths, write_source_captions
from db.catalog import Catalog
from hfaid.cli import main as hfaid
from hfaid_core.shm_buffers import shared_memory_size
from training.infer import diffusers_guidance_scale, generate_images, load_pipeline
from training.train_ropo import (
    RopoConfig,
    build_dataloader,
    loader_workers,
    parse_args,
    resize_and_crop,
    ropo_config,
    ropo_example,
    to_tensor,
)

RES = 16  # training resolution in these tests: the tiny VAE makes 8x8 latents


def _run(*args) -> int:
    return hfaid([str(a) for a in args])


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory) -> Path:
    """A random-weight SD folder written by `hfaid tiny-sd` (diffusers' SD2 test sizes)."""
    folder = tmp_path_factory.mktemp("tiny") / "sd"
    assert _run("tiny-sd", folder) == 0
    return folder


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    """Real `hfaid export` folders of a 12-photo pool: before and after captioning."""
    root = tmp_path_factory.mktemp("export")
    write_photo_pool(root / "pool", 12, size=(64, 48))
    db = root / "hfaid.duckdb"
    assert _run("ingest", root / "pool", "--workers", "1", "--catalog", db) == 0
    common = ["--status", "all", "--captions", "any", "--maxcount", "5", "--workers", "1",
              "--catalog", db]
    assert _run("export", "--out", root / "uncaptioned", *common) == 0
    ids = image_paths(Catalog(db)).column("image_id").to_pylist()
    write_source_captions(Catalog(db), pa.table({
        "image_id": ids, "source": ["test"] * len(ids),
        "caption": [f"a lower photo number {i}" for i in range(len(ids))],
    }), run_id=None)
    assert _run("export", "--out", root / "captioned", *common) == 0
    return {"captioned": root / "captioned", "uncaptioned": root / "uncaptioned"}


def _photo(size: tuple[int, int]) -> Image.Image:
    return Image.open(colour_photos()[0]).convert("RGB").resize(size)


def test_ropo_shares_over_10000_examples():
    cfg = RopoConfig(resolution=RES)
    image = _photo((40, 30))
    clean = to_tensor(resize_and_crop(image, RES))
    rng = np.random.default_rng(0)
    negatives = empties = 0
    for _ in range(10_000):
        ex = ropo_example(image, "a red barn", rng, cfg)
        negatives += ex["negative"]
        empties += ex["caption"] == ""
        if ex["negative"]:
            assert ex["caption"] in ("", "[V] a red barn")
            assert (ex["pixel_values"] - clean).abs().mean() > 1e-3  # degraded
        else:
            assert ex["caption"] in ("", "[X] a red barn")
            assert torch.equal(ex["pixel_values"], clean)  # untouched
        assert ex["pixel_values"].shape == (3, RES, RES)
    assert abs(negatives / 10_000 - 0.2) <= 0.01
    assert abs(empties / 10_000 - 0.05) <= 0.01


def test_resize_shorter_side_then_centre_crop(tmp_path):
    # Red | green | blue thirds of a 3:2 image: the centre square holds only green.
    array = np.zeros((200, 300, 3), np.uint8)
    array[:, :50, 0] = array[:, 50:250, 1] = array[:, 250:, 2] = 255
    path = tmp_path / "wide.jpg"
    Image.fromarray(array).resize((1200, 800), Image.Resampling.NEAREST).save(path, quality=95)
    out = np.asarray(resize_and_crop(Image.open(path), 64)).astype(int)
    assert out.shape == (64, 64, 3)
    assert out[:, :, 1].mean() > 240 and out[:, :, 0].mean() < 15 and out[:, :, 2].mean() < 15


def test_dataloader_reads_exported_shards(tiny_sd, exports):
    from transformers import CLIPTokenizer

    from training.checks import find_shards

    tokenizer = CLIPTokenizer.from_pretrained(tiny_sd, subfolder="tokenizer")
    loader = build_dataloader(find_shards(exports["captioned"]), RopoConfig(resolution=RES),
                              tokenizer, batch_size=4, num_workers=0, seed=1)
    batches = iter(loader)
    known = {f"a lower photo number {i}" for i in range(12)}
    for _ in range(10):
        batch = next(batches)
        assert batch["pixel_values"].shape == (4, 3, RES, RES)
        assert batch["input_ids"].shape == (4, tokenizer.model_max_length)
        assert -1.0 <= batch["pixel_values"].min() and batch["pixel_values"].max() <= 1.0
        for caption, negative in zip(batch["captions"], batch["negative"].tolist(), strict=True):
            if caption:
                assert caption.startswith("[V] " if negative else "[X] ")
                assert caption[4:] in known


_SMALL_SHM_LOADER = """
import sys
import time
from transformers import CLIPTokenizer
from training.checks import find_shards
from training.train_ropo import RopoConfig, build_dataloader

tokenizer = CLIPTokenizer.from_pretrained(sys.argv[1], subfolder="tokenizer")
loader = build_dataloader(find_shards(sys.argv[2]), RopoConfig(resolution=384), tokenizer,
                          batch_size=4, num_workers=2, seed=1)
batches, seen = iter(loader), 0
for _ in range(12):
    seen += next(batches)["pixel_values"].shape[0]
    time.sleep(0.3)  # a training step: the workers fill their prefetch queues meanwhile
print(seen)
"""


def test_loader_workers_fit_their_batches_in_dev_shm():
    # 8 x 3 x 512 x 512 float32 = 25 MB a batch, 5 held per worker: none fit in Docker's 64 MB.
    assert loader_workers(4, 8, 512, 64 << 20) == 0
    assert loader_workers(4, 8, 512, 8 << 30) == 4
    assert loader_workers(4, 8, 512, None) == 4  # no /dev/shm to check
    assert loader_workers(4, 4, 64, 64 << 20) == 4


def test_training_processes_of_one_machine_share_dev_shm(exports, monkeypatch, caplog):
    from training.checks import find_shards

    shards, shm = find_shards(exports["captioned"]), shared_memory_size()
    if not shm or shm < 256 << 20:
        pytest.skip("needs a /dev/shm of 256 MB or more")
    cfg = RopoConfig(resolution=384)  # batches of 4: 7 MB, 35 MB per worker
    processes = shm // (40 << 20)  # more processes than give each worker its 35 MB * 4/3
    assert build_dataloader(shards, cfg, None, 4, 2, seed=1).num_workers == 2
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(processes))
    with caplog.at_level("WARNING", logger="train_ropo"):
        assert build_dataloader(shards, cfg, None, 4, 2, seed=1).num_workers == 0
    assert "the training process loads the batches" in caplog.text


def test_a_real_24_mb_dev_shm_trains_from_fewer_loader_workers(tiny_sd, exports, tmp_path):
    """2 workers at 384 px, batches of 4 (7 MB each): too big for 24 MB, so none is started."""
    skip_without_private_shm()
    script = tmp_path / "load.py"
    script.write_text(_SMALL_SHM_LOADER)
    repo = Path(__file__).resolve().parents[1]
    command = " ".join(shlex.quote(str(a)) for a in
                       (sys.executable, script, tiny_sd, exports["captioned"]))
    done = subprocess.run(in_small_shm(command), capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(repo)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "48"
    assert "/dev/shm has 24 MiB" in done.stderr and "the training process loads" in done.stderr


@pytest.mark.parametrize("case,needle", [
    ("no_data", "does not exist"),
    ("empty_data", "no WebDataset shards"),
    ("no_captions", "empty caption"),
    ("not_diffusers", "no model_index.json"),
    ("no_unet", "unet/config.json is missing"),
    ("no_pretrained", "does not exist"),
    ("bad_resolution", "multiple of 8"),
])
def test_bad_input_fails_before_training(case, needle, tiny_sd, exports, tmp_path, capsys):
    data, pretrained = exports["captioned"], tiny_sd
    if case == "no_data":
        data = tmp_path / "missing"
    elif case == "empty_data":
        data = tmp_path / "empty"
        data.mkdir()
    elif case == "no_captions":
        data = exports["uncaptioned"]
    elif case == "not_diffusers":
        pretrained = tmp_path / "plain"
        pretrained.mkdir()
        (pretrained / "weights.pt").write_bytes(b"0")
    elif case == "no_unet":
        pretrained = tmp_path / "partial"
        pretrained.mkdir()
        (pretrained / "model_index.json").write_text(
            (tiny_sd / "model_index.json").read_text())
    elif case == "no_pretrained":
        pretrained = tmp_path / "nowhere" / "sd"
    extra = ["--resolution", "30"] if case == "bad_resolution" else []
    out = tmp_path / "out"
    code = _run("finetune", "--data", data, "--pretrained", pretrained, "--output", out, *extra)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and needle in err, err
    assert not out.exists()  # nothing launched


def test_config_section_reaches_the_script(tiny_sd, exports, tmp_path, capsys):
    config = tmp_path / "hfaid.toml"
    config.write_text('[finetune]\npositive_ratio = 0.7\nnegative_identifier = "[LQ]"\n'
                      '[degrade]\njpeg_range = [40, 90]\n')
    code = _run("finetune", "--data", exports["captioned"], "--pretrained", tiny_sd,
                "--output", tmp_path / "o", "--config", config, "--dry-run",
                "--adam_beta1=0.8")
    out = capsys.readouterr().out
    assert code == 0
    assert "accelerate.commands.launch" in out and "train_ropo.py" in out
    for expected in ("--positive_ratio=0.7", "--negative_identifier=[LQ]",
                     "--learning_rate=5e-05", "--max_train_steps=3000", "--adam_beta1=0.8"):
        assert expected in out
    # The [degrade] section reaches the script's negatives as a DegradationConfig.
    flag = next(a for a in shlex.split(out) if a.startswith("--degradation_config="))
    args = parse_args(["--pretrained_model_name_or_path=m", "--train_data_dir=d",
                       "--output_dir=o", flag])
    assert ropo_config(args).degradation.jpeg_range == [40, 90]


def _log(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "logs" / "train_log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_finetune_checkpoint_resume_and_generate(tiny_sd, exports, tmp_path):
    out = tmp_path / "refined"
    args = ["finetune", "--data", exports["captioned"], "--pretrained", tiny_sd, "--output", out,
            "--resolution", RES, "--train-batch-size", "2", "--gradient-accumulation-steps", "1",
            "--checkpointing-steps", "2", "--dataloader-num-workers", "1", "--seed", "0",
            "--use-ema"]
    assert _run(*args, "--max-train-steps", "3", "--validation-prompt", "a cat",
                "--validation_inference_steps=2") == 0
    rows = _log(out)
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert all(math.isfinite(r["loss"]) and r["loss"] > 0 for r in rows)
    assert (out / "checkpoint-2" / "model.safetensors").is_file()
    assert (out / "checkpoint-2" / "custom_checkpoint_0.pkl").is_file()  # the EMA weights
    assert (out / "model_index.json").is_file() and (out / "unet").is_dir()
    assert json.loads((out / "hfaid_ropo.json").read_text())["positive_identifier"] == "[X]"
    assert Image.open(out / "validation" / "step-3" / "00.png").size == (RES, RES)

    # Resume from the latest checkpoint (step 2) and go on to step 4.
    assert _run(*args, "--max-train-steps", "4", "--resume-from-checkpoint", "latest") == 0
    assert [r["step"] for r in _log(out)] == [1, 2, 3, 3, 4]
    assert (out / "checkpoint-4").is_dir()

    gen = tmp_path / "gen"
    assert _run("generate", "--model", out, "--prompt", "a cat", "--output", gen, "--steps", "2",
                "--resolution", RES, "--device", "cpu") == 0
    assert Image.open(gen / "0000.png").size == (RES, RES)
    record = json.loads((gen / "prompts.jsonl").read_text().splitlines()[0])
    assert record["prompt"] == "[X] a cat" and record["negative_prompt"] == "[V] a cat"


def test_identifier_guidance_is_the_papers_formula(tiny_sd):
    """The pipeline's output equals a hand-written loop with eps_pos + s (eps_pos - eps_neg)."""
    assert diffusers_guidance_scale(0.0) == 1.0 and diffusers_guidance_scale(2.5) == 3.5
    pipe = load_pipeline(tiny_sd, device="cpu")
    s, steps = 2.5, 3
    got = generate_images(pipe, ["a cat"], guidance_scale=s, num_inference_steps=steps, seed=0,
                          resolution=RES, output_type="np")

    def embed(text: str) -> torch.Tensor:
        ids = pipe.tokenizer(text, padding="max_length", max_length=77, truncation=True,
                             return_tensors="pt").input_ids
        return pipe.text_encoder(ids)[0]

    with torch.no_grad():
        pos, neg = embed("[X] a cat"), embed("[V] a cat")
        factor = pipe.vae_scale_factor
        latents = torch.randn((1, 4, RES // factor, RES // factor),
                              generator=torch.Generator("cpu").manual_seed(0))
        latents = latents * pipe.scheduler.init_noise_sigma
        pipe.scheduler.set_timesteps(steps)
        gaps = []
        for t in pipe.scheduler.timesteps:
            x = pipe.scheduler.scale_model_input(latents, t)
            eps_pos = pipe.unet(x, t, encoder_hidden_states=pos).sample
            eps_neg = pipe.unet(x, t, encoder_hidden_states=neg).sample
            gaps.append((eps_pos - eps_neg).abs().max().item())
            eps = eps_pos + s * (eps_pos - eps_neg)
            latents = pipe.scheduler.step(eps, t, latents).prev_sample
        image = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
        want = (image / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    assert min(gaps) > 0  # the identifiers really differ, so the check is not vacuous
    np.testing.assert_allclose(got, want, atol=1e-4)
    unguided = generate_images(pipe, ["a cat"], guidance_scale=0.0, num_inference_steps=steps,
                               seed=0, resolution=RES, output_type="np")
    assert np.abs(unguided - got).max() > 1e-3


@pytest.mark.gpu
def test_finetune_mixed_precision_on_gpu(tiny_sd, exports, tmp_path):
    """--mixed-precision auto picks bf16/fp16 on CUDA; loss stays finite."""
    out = tmp_path / "refined"
    assert _run("finetune", "--data", exports["captioned"], "--pretrained", tiny_sd,
                "--output", out, "--resolution", "32", "--train-batch-size", "2",
                "--gradient-accumulation-steps", "2", "--max-train-steps", "2",
                "--dataloader-num-workers", "1", "--use-ema", "--gradient-checkpointing",
                "--validation-prompt", "a cat", "--validation_inference_steps=2") == 0
    assert all(math.isfinite(r["loss"]) for r in _log(out))
    assert (out / "validation" / "step-2" / "00.png").is_file()
