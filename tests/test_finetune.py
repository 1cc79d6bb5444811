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


@pytest.mark.parametrize("mode,prompt,negative", [
    ("both", "[X] a cat", "[V] a cat"),
    ("positive", "[X] a cat", ""),  # Table 2: w/o negative prompt
    ("negative", "a cat", "[V] a cat"),  # Table 2: w/o positive prompt
    ("none", "a cat", ""),  # Table 2: w/o prompt (plain classifier-free guidance)
])
def test_identifier_guidance_is_the_papers_formula(tiny_sd, mode, prompt, negative):
    """The pipeline's output equals a hand-written loop with eps_pos + s (eps_pos - eps_neg),
    for the prompts each --identifiers mode claims."""
    assert diffusers_guidance_scale(0.0) == 1.0 and diffusers_guidance_scale(2.5) == 3.5
    pipe = load_pipeline(tiny_sd, device="cpu")
    s, steps = 2.5, 3
    got = generate_images(pipe, ["a cat"], guidance_scale=s, num_inference_steps=steps, seed=0,
                          resolution=RES, output_type="np", identifiers=mode)

    def embed(text: str) -> torch.Tensor:
        ids = pipe.tokenizer(text, padding="max_length", max_length=77, truncation=True,
                             return_tensors="pt").input_ids
        return pipe.text_encoder(ids)[0]

    with torch.no_grad():
        pos, neg = embed(prompt), embed(negative)
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
                               seed=0, resolution=RES, output_type="np", identifiers=mode)
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


# ---- base models, prediction types, weight checks (issue 25) ------------------------------

def _train_in_process(base: Path, data: Path, out: Path, *extra: str) -> dict:
    """train_ropo.main for 2 steps of batch 2 at 16 px, in this process (no accelerate launch)."""
    from training.train_ropo import main

    main([f"--pretrained_model_name_or_path={base}", f"--train_data_dir={data}",
          f"--output_dir={out}", f"--resolution={RES}", "--max_train_steps=2",
          "--train_batch_size=2", "--gradient_accumulation_steps=1",
          "--dataloader_num_workers=0", "--seed=0", "--checkpointing_steps=100",
          "--validation_steps=100", "--learning_rate=1e-3", *extra])
    return json.loads((out / "hfaid_ropo.json").read_text())


def _state(folder: Path, part: str) -> dict[str, torch.Tensor]:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    cls = {"unet": UNet2DConditionModel, "vae": AutoencoderKL,
           "text_encoder": CLIPTextModel}[part]
    return cls.from_pretrained(folder, subfolder=part).state_dict()


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_two_steps_move_the_unet_and_leave_vae_and_text_encoder(prediction_type, exports,
                                                                  tmp_path):
    from training.tiny_sd import build_tiny_pipeline

    base = build_tiny_pipeline(tmp_path / "base", prediction_type=prediction_type)
    out = tmp_path / "out"
    record = _train_in_process(base, exports["captioned"], out)
    assert record["prediction_type"] == prediction_type
    assert [r["step"] for r in _log(out)] == [1, 2]
    assert all(math.isfinite(r["loss"]) and r["loss"] > 0 for r in _log(out))
    # The script's own check compares the modules it trained with against the base on disk.
    check = record["weights_check"]
    assert check["ok"] and check["unet"]["changed"] > 0 and check["unet"]["relative_change"] > 0
    assert check["vae"]["changed"] == 0 and check["text_encoder"]["changed"] == 0
    # And independently, from the saved files.
    before, after = _state(base, "unet"), _state(out, "unet")
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(moved) > len(before) // 2, f"only {len(moved)} of {len(before)} tensors moved"
    for part in ("vae", "text_encoder"):
        b, a = _state(base, part), _state(out, part)
        assert all(torch.equal(b[k], a[k]) for k in b), part


def test_weight_check_flags_a_frozen_part_that_moved(tiny_sd):
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from training.weight_check import describe, weight_report

    unet = UNet2DConditionModel.from_pretrained(tiny_sd, subfolder="unet")
    vae = AutoencoderKL.from_pretrained(tiny_sd, subfolder="vae")
    on_disk = AutoencoderKL.from_pretrained(tiny_sd, subfolder="vae")
    same = weight_report(unet, UNet2DConditionModel.from_pretrained(tiny_sd, subfolder="unet"),
                         {"vae": (vae, on_disk)})
    assert not same["ok"] and same["unet"]["changed"] == 0  # an untrained UNet is not "ok"
    with torch.no_grad():
        unet.conv_in.weight.add_(1e-3)
        vae.decoder.conv_out.bias.add_(1e-3)
    moved = weight_report(unet, UNet2DConditionModel.from_pretrained(tiny_sd, subfolder="unet"),
                          {"vae": (vae, on_disk)})
    assert moved["unet"]["changed"] == 1 and moved["vae"]["changed"] == 1 and not moved["ok"]
    assert "vae: 1 tensors CHANGED" in describe(moved)
    # bf16 frozen parts compare against the disk copy cast the same way: unchanged.
    assert weight_report(unet, UNet2DConditionModel.from_pretrained(tiny_sd, subfolder="unet"),
                         {"vae": (on_disk.to(torch.bfloat16),
                                  AutoencoderKL.from_pretrained(tiny_sd, subfolder="vae"))}
                         )["ok"]


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_loss_target_follows_the_scheduler(prediction_type, tmp_path):
    """compute_loss against the formulas written out: eps, or v = sqrt(ab) eps - sqrt(1-ab) x0."""
    from training.tiny_sd import build_tiny_pipeline
    from training.train_ropo import compute_loss, load_components

    base = build_tiny_pipeline(tmp_path / "sd", prediction_type=prediction_type)
    tokenizer, text_encoder, vae, unet, scheduler = load_components(base)
    assert scheduler.config.prediction_type == prediction_type
    batch = {"pixel_values": to_tensor(resize_and_crop(_photo((40, 30)), RES))[None].repeat(2, 1,
                                                                                            1, 1),
             "input_ids": tokenizer(["[X] a cat", "[V] a cat"], padding="max_length",
                                    max_length=77, return_tensors="pt").input_ids}
    with torch.no_grad():
        torch.manual_seed(3)
        got = compute_loss(batch, unet, vae, text_encoder, scheduler, torch.float32)
        torch.manual_seed(3)
        x0 = vae.encode(batch["pixel_values"]).latent_dist.sample() * vae.config.scaling_factor
        noise = torch.randn_like(x0)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (2,)).long()
        ab = scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
        noisy = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
        target = noise if prediction_type == "epsilon" else ab.sqrt() * noise - (1 - ab).sqrt() * x0
        pred = unet(noisy, t, text_encoder(batch["input_ids"])[0]).sample
        want = torch.nn.functional.mse_loss(pred, target)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-6), (got, want)
    other = noise if prediction_type != "epsilon" else ab.sqrt() * noise - (1 - ab).sqrt() * x0
    assert not torch.allclose(got, torch.nn.functional.mse_loss(pred, other), rtol=1e-3)


def test_named_bases_resolve_from_the_cache_only(tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants

    from training.bases import BASES, resolve_base

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    assert BASES["sd21-base"].prediction_type == "epsilon" and BASES["sd21-base"].resolution == 512
    assert BASES["sd21"].prediction_type == "v_prediction" and BASES["sd21"].resolution == 768
    from hfaid_core.errors import HfaidError

    with pytest.raises(HfaidError, match=r"sd21-base \(stabilityai/stable-diffusion-2-1-base\)"
                       r".*not in the Hugging Face cache"):
        resolve_base("sd21-base")


def test_base_path_reports_its_prediction_type_and_size(tmp_path, exports, capsys):
    from training.tiny_sd import build_tiny_pipeline

    base = build_tiny_pipeline(tmp_path / "v", prediction_type="v_prediction")
    code = _run("finetune", "--data", exports["captioned"], "--base", base,
                "--output", tmp_path / "o", "--dry-run", "--identifiers", "positive",
                "--caption-policy", "first-sentences")
    captured = capsys.readouterr()
    assert code == 0
    assert f"base: {base} (v_prediction, 32 px)" in captured.err
    assert "captions: 0 of 12 captions exceed" in captured.err
    command = shlex.split(captured.out.strip())
    assert "--identifiers=positive" in command and "--caption_policy=first-sentences" in command
    code = _run("finetune", "--data", exports["captioned"], "--base", base, "--output",
                tmp_path / "o", "--identifiers", "negative")
    assert code == 2 and "--identifiers must be one of both, positive, none" in \
        capsys.readouterr().err


# ---- long captions ---------------------------------------------------------------------------

def _clip_tokenizer():
    """The real CLIP BPE tokenizer (49,408 tokens), built from the merges openai-clip ships."""
    import gzip
    import importlib.util

    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    bpe = Path(importlib.util.find_spec("clip").origin).parent / "bpe_simple_vocab_16e6.txt.gz"
    lines = gzip.open(bpe).read().decode("utf-8").split("\n")[1:49152 - 256 - 2 + 1]
    merges = [tuple(line.split()) for line in lines]
    vocab = list(bytes_to_unicode().values())
    vocab += [v + "</w>" for v in vocab] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(vocab)}, merges=merges,
                         model_max_length=77)


# The paper's Figure 6 caption (Florence-2 style), and one made longer than 77 tokens.
PANCAKES = ("There is a stack of pancakes on a white plate. There are raspberries and "
            "blueberries on top of the pancakes. There is two white bowls next to the plate "
            "with berries in them.")
LONG = PANCAKES + (" The table is made of dark wood and has a rough texture. A window behind "
                   "it lets in soft morning light. A fork and a knife lie to the left. A glass "
                   "of orange juice stands behind the plate, next to a small jar of honey.")
RUN_ON = "a very long sentence about " + " and ".join(["a red barn"] * 30)


@pytest.mark.parametrize("policy", ["truncate", "first-sentences", "drop"])
def test_caption_policies_count_and_handle_long_captions(policy, tmp_path):
    from training.captions import plan_captions, token_counts

    tokenizer = _clip_tokenizer()
    assert token_counts(tokenizer, [PANCAKES])[0] < 77 < token_counts(tokenizer, [LONG])[0]
    captions = {"a/1": PANCAKES, "a/2": LONG, "a/3": RUN_ON, "a/4": "a cat"}
    plan = plan_captions(captions, tokenizer, ["[X]", "[V]"], policy)
    assert plan.total == 4 and plan.too_long == 2 and plan.longest > 77
    assert "2 of 4 captions exceed the text encoder's 77 tokens" in plan.summary()
    assert f"--caption-policy {policy}" in plan.summary()
    if policy == "truncate":
        assert plan.overrides == {}
    elif policy == "drop":
        assert plan.dropped == {"a/2", "a/3"}
    else:
        kept = plan.overrides["a/2"]
        assert kept.startswith(PANCAKES[:40]) and kept.endswith(".") and LONG.startswith(kept)
        assert token_counts(tokenizer, ["[V] " + kept])[0] <= 77
        assert "a/3" not in plan.overrides and plan.cut_mid_sentence == 1  # cut like truncate


def test_drop_policy_leaves_samples_out_of_the_stream(tiny_sd, exports):
    from transformers import CLIPTokenizer

    from training.captions import CaptionPlan
    from training.checks import check_shards, find_shards

    shard_set = check_shards(find_shards(exports["captioned"]))
    keys = sorted(shard_set.captions)
    plan = CaptionPlan("drop", len(keys), 77, too_long=len(keys) - 1,
                       overrides=dict.fromkeys(keys[1:]))
    tokenizer = CLIPTokenizer.from_pretrained(tiny_sd, subfolder="tokenizer")
    loader = build_dataloader(shard_set.shards, RopoConfig(resolution=RES, empty_caption_prob=0),
                              tokenizer, batch_size=4, num_workers=0, seed=1, captions=plan)
    batch = next(iter(loader))
    kept = shard_set.captions[keys[0]]
    assert {c[4:] for c in batch["captions"]} == {kept}


def test_identifier_modes_train_the_captions_they_claim():
    image = _photo((40, 30))
    rng = np.random.default_rng(0)
    for mode, prefix in (("positive", "[X] "), ("none", "")):
        cfg = RopoConfig(resolution=RES, identifiers=mode, empty_caption_prob=0)
        examples = [ropo_example(image, "a red barn", rng, cfg) for _ in range(200)]
        assert not any(e["negative"] for e in examples)  # clean samples only
        assert {e["caption"] for e in examples} == {prefix + "a red barn"}
