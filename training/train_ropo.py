"""RAP-SR fine-tuning: Restoration Prior Refinement + Restoration-Oriented Prompt Optimization.

Run through `hfaid finetune` (which wraps `accelerate launch`) or directly:
    accelerate launch training/train_ropo.py --pretrained_model_name_or_path DIR \
        --train_data_dir EXPORT_DIR --output_dir OUT

Structured like diffusers' examples/text_to_image/train_text_to_image.py. Per sample
(Algorithm 1 of the paper): with probability r the caption becomes "[X] " + caption on the
clean image; otherwise "[V] " + caption on the image degraded by
curation.degrade.realesrgan (Real-ESRGAN second order) and brought back to the training size;
5% of captions are left empty.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

if __package__ in (None, ""):  # run as a script by `accelerate launch training/train_ropo.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curation.degrade.realesrgan import degrade  # noqa: E402
from hfaid_core.errors import HfaidError  # noqa: E402
from hfaid_core.settings.degrade import DegradationConfig  # noqa: E402
from hfaid_core.shm_buffers import shared_memory_share, workers_that_fit  # noqa: E402
from training.bases import inspect_base  # noqa: E402
from training.captions import (  # noqa: E402
    CAPTION_POLICIES,
    DEFAULT_CAPTION_POLICY,
    CaptionPlan,
    plan_captions,
)
from training.checks import (  # noqa: E402
    IMAGE_EXTS,
    caption_key,
    check_shards,
    find_shards,
    resolve_pretrained,
)
from training.infer import (  # noqa: E402
    DEFAULT_GUIDANCE,
    NEGATIVE_IDENTIFIER,
    POSITIVE_IDENTIFIER,
    ROPO_FILE,
    TRAIN_IDENTIFIER_MODES,
    generate_images,
    with_identifier,
)
from training.weight_check import describe, weight_report  # noqa: E402

logger = logging.getLogger("train_ropo")
PREFETCH_BATCHES = 4  # per loader worker
LOSS_LOG = "logs/train_log.jsonl"


# ---- per-sample preprocessing (module level so tests and benchmarks import it) --------------

@dataclass(frozen=True)
class RopoConfig:
    resolution: int = 512
    positive_identifier: str = POSITIVE_IDENTIFIER
    negative_identifier: str = NEGATIVE_IDENTIFIER
    positive_ratio: float = 0.8  # the paper's r
    empty_caption_prob: float = 0.05
    degradation_scale: int = 4
    random_flip: bool = False
    degradation: DegradationConfig | None = None  # None: Real-ESRGAN defaults
    identifiers: str = "both"  # both | positive (clean "[X] c" only) | none (clean "c" only)

    def prefixes(self) -> list[str]:
        """The identifiers a caption may get."""
        if self.identifiers == "none":
            return [""]
        if self.identifiers == "positive":
            return [self.positive_identifier]
        return [self.positive_identifier, self.negative_identifier]


def decode_sample(sample: dict) -> tuple[Image.Image, str]:
    """The RGB image and caption of one WebDataset sample ({key}.jpg|png|webp + {key}.txt)."""
    ext = next((e for e in IMAGE_EXTS if e in sample), None)
    if ext is None or "txt" not in sample:
        raise ValueError(f"sample {sample.get('__key__')!r} lacks an image or a caption")
    image = Image.open(io.BytesIO(sample[ext]))
    return image, sample["txt"].decode("utf-8").strip()


def resize_and_crop(image: Image.Image, resolution: int) -> Image.Image:
    """Shorter side to `resolution` (bicubic, antialiased), then a centre crop to a square.

    The paper says "512 on the longer side and center-cropped", which would leave the short
    side under 512; we follow diffusers (shorter side, then crop), see docs/TRAINING.md.
    """
    if image.format == "JPEG":
        image.draft("RGB", (resolution, resolution))  # DCT-domain downscale, never below target
    image = ImageOps.exif_transpose(image).convert("RGB")
    w, h = image.size
    scale = resolution / min(w, h)
    size = (max(resolution, round(w * scale)), max(resolution, round(h * scale)))
    image = image.resize(size, Image.Resampling.BICUBIC)
    left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
    return image.crop((left, top, left + resolution, top + resolution))


def to_tensor(image: Image.Image) -> torch.Tensor:
    """HxWx3 uint8 -> 3xHxW float in [-1, 1], the VAE's input range."""
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array.transpose(2, 0, 1).copy())


def ropo_example(image: Image.Image, caption: str, rng: np.random.Generator,
                 cfg: RopoConfig) -> dict:
    """Algorithm 1, lines 3-8: a positive (clean, "[X] ...") or negative (degraded, "[V] ...")."""
    clean = resize_and_crop(image, cfg.resolution)
    if cfg.random_flip and rng.random() < 0.5:
        clean = ImageOps.mirror(clean)
    # u < r keeps the positive; without the negative identifier every sample is clean.
    negative = bool(rng.random() >= cfg.positive_ratio) and cfg.identifiers == "both"
    if negative:
        low, _ = degrade(np.asarray(clean), rng, cfg.degradation_scale, cfg.degradation)
        shown = Image.fromarray(low).resize((cfg.resolution, cfg.resolution),
                                            Image.Resampling.BICUBIC)
        identifier = cfg.negative_identifier
    else:
        shown = clean
        identifier = "" if cfg.identifiers == "none" else cfg.positive_identifier
    # The whole text is dropped, as CFG's unconditional branch sees it.
    empty = bool(rng.random() < cfg.empty_caption_prob)
    text = "" if empty else with_identifier(identifier, caption)
    return {"pixel_values": to_tensor(shown), "caption": text, "negative": negative}


class RopoTransform:
    """Picklable sample -> example map with one random stream per (seed, rank, worker);
    `captions` replaces the captions a caption policy shortened (`CaptionPlan.overrides`)."""

    def __init__(self, cfg: RopoConfig, seed: int | None,
                 captions: dict[str, str | None] | None = None) -> None:
        self.cfg, self.seed, self._rng = cfg, seed, None
        self.captions = {k: v for k, v in (captions or {}).items() if v is not None}

    def __call__(self, sample: dict) -> dict:
        if self._rng is None:
            info = torch.utils.data.get_worker_info()
            worker = info.id if info is not None else 0
            rank = int(os.environ.get("RANK", "0"))
            entropy = None if self.seed is None else [self.seed, rank, worker]
            self._rng = np.random.default_rng(entropy)
        image, caption = decode_sample(sample)
        caption = self.captions.get(sample_key(sample), caption)
        return ropo_example(image, caption, self._rng, self.cfg)


def sample_key(sample: dict) -> str:
    """The caption key (`training.checks.caption_key`) of a WebDataset sample."""
    return caption_key(sample.get("__url__", ""), sample.get("__key__", ""))


class SkipSamples:
    """Picklable filter: leaves out the samples a caption policy dropped."""

    def __init__(self, dropped: set[str]) -> None:
        self.dropped = frozenset(dropped)

    def __call__(self, sample: dict) -> bool:
        return sample_key(sample) not in self.dropped


def collate_fn(examples: list[dict], tokenizer) -> dict:
    """Stack pixels and tokenize captions to the text encoder's fixed length."""
    input_ids = tokenizer(
        [e["caption"] for e in examples], max_length=tokenizer.model_max_length,
        padding="max_length", truncation=True, return_tensors="pt",
    ).input_ids
    return {
        "pixel_values": torch.stack([e["pixel_values"] for e in examples]).contiguous(),
        "input_ids": input_ids,
        "negative": torch.tensor([e["negative"] for e in examples]),
        "captions": [e["caption"] for e in examples],
    }


def build_dataset(shards: list[Path], cfg: RopoConfig, seed: int | None,
                  shuffle_buffer: int = 256, captions: CaptionPlan | None = None):
    """An endless, resampled stream of ROPO examples, split by node and by worker, with the
    caption policy's replacements and drops applied."""
    import webdataset as wds

    overrides = captions.overrides if captions else {}
    stream = wds.WebDataset([str(s) for s in shards], resampled=True, shardshuffle=False,
                            nodesplitter=wds.split_by_node, workersplitter=wds.split_by_worker,
                            handler=wds.warn_and_continue, empty_check=False)
    if captions and captions.dropped:
        stream = stream.select(SkipSamples(captions.dropped))
    return (stream.shuffle(shuffle_buffer)
            .map(RopoTransform(cfg, seed, overrides), handler=wds.warn_and_continue))


def loader_workers(requested: int, batch_size: int, resolution: int,
                   shm_bytes: int | None) -> int:
    """As many of the requested loader workers as their batches fit in /dev/shm, with a
    warning when that is fewer: workers send batches through it, and one that runs out of it
    stops the run (Docker's default is 64 MB; a batch of 8 at 512 px is 25 MB)."""
    batch_bytes = batch_size * 3 * resolution * resolution * 4  # float32 pixel_values
    # Each worker holds its prefetched batches and the one it is filling.
    per_worker = (PREFETCH_BATCHES + 1) * batch_bytes
    fit = workers_that_fit(requested, per_worker, shm_bytes)
    if fit < requested:
        logger.warning(
            "/dev/shm has %d MiB for this process but %d loader workers need about %d MiB, so "
            "%s (slower). "
            "Give the machine or container more shared memory (docker run --shm-size=8g, or "
            "--ipc=host), or lower --dataloader_num_workers.", (shm_bytes or 0) >> 20,
            requested, requested * per_worker >> 20,
            f"only {fit} load" if fit else "the training process loads the batches")
    return fit


def build_dataloader(shards: list[Path], cfg: RopoConfig, tokenizer, batch_size: int,
                     num_workers: int, seed: int | None, shuffle_buffer: int = 256,
                     captions: CaptionPlan | None = None):
    """Batches of `batch_size` examples, decoded and degraded by worker processes (as many
    of `num_workers` as /dev/shm has room for)."""
    # The training processes of one machine (accelerate/torchrun set LOCAL_WORLD_SIZE) share it.
    workers = loader_workers(num_workers, batch_size, cfg.resolution, shared_memory_share())
    return torch.utils.data.DataLoader(
        build_dataset(shards, cfg, seed, shuffle_buffer, captions), batch_size=batch_size,
        collate_fn=partial(collate_fn, tokenizer=tokenizer), num_workers=workers,
        pin_memory=torch.cuda.is_available(), persistent_workers=workers > 0,
        prefetch_factor=PREFETCH_BATCHES if workers > 0 else None,
    )


def compute_loss(batch: dict, unet, vae, text_encoder, noise_scheduler,
                 weight_dtype: torch.dtype) -> torch.Tensor:
    """Algorithm 1, lines 10-14, in latent space; the target follows the scheduler config."""
    latents = vae.encode(batch["pixel_values"].to(dtype=weight_dtype)).latent_dist.sample()
    latents = latents * vae.config.scaling_factor
    noise = torch.randn_like(latents)
    timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps,
                              (latents.shape[0],), device=latents.device).long()
    noisy_latents = noise_scheduler.add_noise(latents, noise, timesteps)
    encoder_hidden_states = text_encoder(batch["input_ids"], return_dict=False)[0]
    prediction_type = noise_scheduler.config.prediction_type
    if prediction_type == "epsilon":
        target = noise
    elif prediction_type == "v_prediction":
        target = noise_scheduler.get_velocity(latents, noise, timesteps)
    else:
        raise ValueError(f"unsupported prediction type {prediction_type!r}")
    model_pred = unet(noisy_latents, timesteps, encoder_hidden_states, return_dict=False)[0]
    return F.mse_loss(model_pred.float(), target.float(), reduction="mean")


# ---- the script --------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pretrained_model_name_or_path", required=True,
                   help="A diffusers Stable Diffusion folder (the paper: SD 2.1).")
    p.add_argument("--train_data_dir", required=True, help="Folder of exported *.tar shards.")
    p.add_argument("--output_dir", required=True)
    p.add_argument("--resolution", type=int, default=512)
    p.add_argument("--random_flip", action="store_true")
    p.add_argument("--positive_identifier", default=POSITIVE_IDENTIFIER)
    p.add_argument("--negative_identifier", default=NEGATIVE_IDENTIFIER)
    p.add_argument("--positive_ratio", type=float, default=0.8, help="The paper's r.")
    p.add_argument("--empty_caption_prob", type=float, default=0.05)
    p.add_argument("--degradation_scale", type=int, default=4)
    p.add_argument("--degradation_config", default=None,
                   help="JSON object of [degrade] keys (hfaid finetune passes the config's).")
    p.add_argument("--allow_empty_captions", action="store_true",
                   help="Train samples whose caption is empty on the identifier alone.")
    p.add_argument("--caption_policy", choices=CAPTION_POLICIES, default=DEFAULT_CAPTION_POLICY,
                   help="Captions longer than the text encoder's window (counted and logged "
                        "before training): cut them, keep their leading whole sentences, or "
                        "drop the samples.")
    p.add_argument("--identifiers", choices=TRAIN_IDENTIFIER_MODES, default="both",
                   help="both: Algorithm 1; positive: clean '[X] caption' samples only; none: "
                        "clean samples with their bare captions (RPR without ROPO).")
    p.add_argument("--train_batch_size", type=int, default=8, help="Per device.")
    p.add_argument("--gradient_accumulation_steps", type=int, default=5,
                   help="Default 8 x 5 = the paper's batch of 40 on one GPU.")
    p.add_argument("--max_train_steps", type=int, default=3000)
    p.add_argument("--learning_rate", type=float, default=5e-5)
    p.add_argument("--scale_lr", action="store_true")
    p.add_argument("--lr_scheduler", default="constant")
    p.add_argument("--lr_warmup_steps", type=int, default=0)
    p.add_argument("--adam_beta1", type=float, default=0.9)
    p.add_argument("--adam_beta2", type=float, default=0.999)
    p.add_argument("--adam_weight_decay", type=float, default=1e-2)
    p.add_argument("--adam_epsilon", type=float, default=1e-8)
    p.add_argument("--max_grad_norm", type=float, default=1.0)
    p.add_argument("--use_ema", action="store_true")
    p.add_argument("--ema_decay", type=float, default=0.9999)
    p.add_argument("--gradient_checkpointing", action="store_true")
    p.add_argument("--allow_tf32", action="store_true")
    p.add_argument("--mixed_precision", choices=["no", "fp16", "bf16"], default=None,
                   help="Default: what `accelerate launch` was given.")
    p.add_argument("--dataloader_num_workers", type=int, default=4)
    p.add_argument("--shuffle_buffer", type=int, default=256)
    p.add_argument("--checkpointing_steps", type=int, default=500)
    p.add_argument("--checkpoints_total_limit", type=int, default=3)
    p.add_argument("--resume_from_checkpoint", default=None,
                   help='"latest" or a checkpoint-N folder name under --output_dir.')
    p.add_argument("--validation_prompts", nargs="*", default=[],
                   help="Captions (without identifiers) rendered with identifier guidance.")
    p.add_argument("--validation_steps", type=int, default=500)
    p.add_argument("--validation_guidance_scale", type=float, default=DEFAULT_GUIDANCE,
                   help="The paper's s (diffusers' guidance_scale is 1 + s).")
    p.add_argument("--validation_inference_steps", type=int, default=30)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--report_to", default="none", help="none | tensorboard | wandb ...")
    args = p.parse_args(argv)
    for name in ("resolution", "train_batch_size", "gradient_accumulation_steps",
                 "max_train_steps", "checkpointing_steps"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1")
    if args.resolution % 8:
        p.error("--resolution must be a multiple of 8")
    if not 0.0 <= args.positive_ratio <= 1.0 or not 0.0 <= args.empty_caption_prob <= 1.0:
        p.error("--positive_ratio and --empty_caption_prob must lie in [0, 1]")
    return args


def ropo_config(args: argparse.Namespace) -> RopoConfig:
    return RopoConfig(
        identifiers=args.identifiers,
        resolution=args.resolution, positive_identifier=args.positive_identifier,
        negative_identifier=args.negative_identifier, positive_ratio=args.positive_ratio,
        empty_caption_prob=args.empty_caption_prob, degradation_scale=args.degradation_scale,
        random_flip=args.random_flip,
        degradation=DegradationConfig(**json.loads(args.degradation_config))
        if args.degradation_config else None,
    )


def find_checkpoint(output_dir: Path, which: str | None) -> Path | None:
    """The checkpoint to resume from: "latest" (None when there is none) or a named folder."""
    if not which:
        return None
    if which != "latest":
        path = Path(which) if Path(which).is_absolute() else output_dir / Path(which).name
        if not path.is_dir():
            raise HfaidError(f"--resume_from_checkpoint {which}: no such checkpoint folder")
        return path
    found = sorted(output_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    return found[-1] if found else None


def prune_checkpoints(output_dir: Path, limit: int | None) -> None:
    """Keep at most `limit - 1` old checkpoints so the one about to be saved fits the limit."""
    if not limit:
        return
    found = sorted(output_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    for old in found[: max(0, len(found) - limit + 1)]:
        shutil.rmtree(old)


def load_components(pretrained: str | Path):
    """Tokenizer, text encoder, VAE, UNet and noise scheduler of a diffusers SD folder; the
    VAE and text encoder come back frozen (only the UNet is trained)."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(pretrained, subfolder="tokenizer")
    text_encoder = CLIPTextModel.from_pretrained(pretrained, subfolder="text_encoder")
    vae = AutoencoderKL.from_pretrained(pretrained, subfolder="vae")
    unet = UNet2DConditionModel.from_pretrained(pretrained, subfolder="unet")
    scheduler = DDPMScheduler.from_pretrained(pretrained, subfolder="scheduler")
    vae.requires_grad_(False)
    text_encoder.requires_grad_(False)
    return tokenizer, text_encoder, vae, unet, scheduler


def caption_plan(pretrained: Path, captions: dict[str, str], cfg: RopoConfig,
                 policy: str) -> CaptionPlan:
    """Over-long captions counted with the base's own tokenizer and the policy's changes."""
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(pretrained, subfolder="tokenizer")
    return plan_captions(captions, tokenizer, cfg.prefixes(), policy)


def caption_record(plan: CaptionPlan) -> dict:
    return {"policy": plan.policy, "total": plan.total, "too_long": plan.too_long,
            "dropped": len(plan.dropped), "max_tokens": plan.max_tokens,
            "longest": plan.longest, "summary": plan.summary()}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        _train(args)
    except HfaidError as exc:  # bad input: one line, non-zero exit, like the hfaid CLI
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


def _train(args: argparse.Namespace) -> None:
    # Inputs are checked before any model or GPU work.
    shard_set = check_shards(find_shards(Path(args.train_data_dir)),
                             args.allow_empty_captions)
    pretrained = resolve_pretrained(args.pretrained_model_name_or_path)
    base = inspect_base(pretrained)
    output_dir = Path(args.output_dir)
    captions = caption_plan(pretrained, shard_set.captions, ropo_config(args),
                            args.caption_policy)

    import diffusers
    import transformers
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, set_seed
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel

    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=None if args.report_to == "none" else args.report_to,
        project_config=ProjectConfiguration(project_dir=str(output_dir),
                                            logging_dir=str(output_dir / "logs")),
    )
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        level=logging.INFO if accelerator.is_main_process else logging.WARNING)
    if not accelerator.is_local_main_process:
        transformers.utils.logging.set_verbosity_error()
        diffusers.utils.logging.set_verbosity_error()
    if args.seed is not None:
        set_seed(args.seed)
    if accelerator.is_main_process:
        (output_dir / "logs").mkdir(parents=True, exist_ok=True)
    logger.info("%d samples in %d shards; base %s", shard_set.samples,
                len(shard_set.shards), base.describe())
    # Never a silent cut: how many captions the text encoder cannot read whole, and the policy.
    (logger.warning if captions.too_long else logger.info)("captions: %s", captions.summary())
    if args.identifiers != "both":
        logger.info("--identifiers %s: clean samples only (no degraded negatives)",
                    args.identifiers)

    # Frozen VAE and text encoder; only the UNet learns (the paper's RPR).
    tokenizer, text_encoder, vae, unet, noise_scheduler = load_components(pretrained)
    unet.train()
    ema_unet = None
    if args.use_ema:
        ema_unet = EMAModel(unet.parameters(), decay=args.ema_decay,
                            model_cls=UNet2DConditionModel, model_config=unet.config)
        ema_unet.to(accelerator.device)
        accelerator.register_for_checkpointing(ema_unet)
    if args.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    if args.allow_tf32:
        torch.backends.cuda.matmul.allow_tf32 = True

    learning_rate = args.learning_rate
    if args.scale_lr:
        learning_rate *= (args.gradient_accumulation_steps * args.train_batch_size
                          * accelerator.num_processes)
    optimizer = torch.optim.AdamW(
        unet.parameters(), lr=learning_rate, betas=(args.adam_beta1, args.adam_beta2),
        weight_decay=args.adam_weight_decay, eps=args.adam_epsilon,
    )
    lr_scheduler = get_scheduler(
        args.lr_scheduler, optimizer=optimizer,
        num_warmup_steps=args.lr_warmup_steps * accelerator.num_processes,
        num_training_steps=args.max_train_steps * accelerator.num_processes,
    )
    # The loader is not prepared: the resampled stream is already split by node and worker.
    train_dataloader = build_dataloader(
        shard_set.shards, ropo_config(args), tokenizer, args.train_batch_size,
        args.dataloader_num_workers, args.seed, args.shuffle_buffer, captions,
    )
    unet, optimizer, lr_scheduler = accelerator.prepare(unet, optimizer, lr_scheduler)

    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(
        accelerator.mixed_precision, torch.float32)
    # Frozen parts run in the mixed-precision dtype; the trained UNet keeps fp32 master weights.
    for frozen in (text_encoder, vae):
        frozen.to(accelerator.device)
        if weight_dtype != torch.float32:
            frozen.to(dtype=weight_dtype)

    if accelerator.is_main_process:
        accelerator.init_trackers("hfaid-ropo", config={
            k: v for k, v in vars(args).items() if isinstance(v, int | float | str | bool)})
        meta = {**asdict(ropo_config(args)), "pretrained": str(pretrained),
                "prediction_type": base.prediction_type, "base_resolution": base.resolution,
                "train_data_dir": str(args.train_data_dir), "samples": shard_set.samples,
                "captions": caption_record(captions)}
        (output_dir / "logs" / "ropo_config.json").write_text(json.dumps(meta, indent=2))

    total_batch = (args.train_batch_size * accelerator.num_processes
                   * args.gradient_accumulation_steps)
    logger.info("batch %d x %d processes x %d accumulation = %d; %d steps", args.train_batch_size,
                accelerator.num_processes, args.gradient_accumulation_steps, total_batch,
                args.max_train_steps)

    global_step = 0
    checkpoint = find_checkpoint(output_dir, args.resume_from_checkpoint)
    if checkpoint is not None:
        accelerator.print(f"resuming from {checkpoint}")
        accelerator.load_state(str(checkpoint))
        global_step = int(checkpoint.name.split("-")[1])
    elif args.resume_from_checkpoint:
        accelerator.print("no checkpoint to resume from; starting a new run")

    def log_validation(step: int) -> None:
        if not args.validation_prompts:
            return
        if ema_unet is not None:  # validate the EMA weights, then put the live ones back
            ema_unet.store(unet.parameters())
            ema_unet.copy_to(unet.parameters())
        pipeline = StableDiffusionPipeline.from_pretrained(
            pretrained, unet=accelerator.unwrap_model(unet), vae=vae, text_encoder=text_encoder,
            tokenizer=tokenizer, safety_checker=None,
        ).to(accelerator.device)
        pipeline.set_progress_bar_config(disable=True)
        with torch.autocast(accelerator.device.type, enabled=weight_dtype != torch.float32):
            images = generate_images(
                pipeline, args.validation_prompts, args.validation_guidance_scale,
                args.validation_inference_steps, args.seed or 0, args.resolution,
                args.positive_identifier, args.negative_identifier,
                identifiers=args.identifiers,
            )
        folder = output_dir / "validation" / f"step-{step}"
        folder.mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(images):
            image.save(folder / f"{i:02d}.png")
        if ema_unet is not None:
            ema_unet.restore(unet.parameters())
        del pipeline

    started, train_loss, negatives = time.perf_counter(), 0.0, 0
    batches = iter(train_dataloader)
    while global_step < args.max_train_steps:
        batch = next(batches)
        negatives += int(batch["negative"].sum())
        batch = {k: v.to(accelerator.device, non_blocking=True) if torch.is_tensor(v) else v
                 for k, v in batch.items()}
        with accelerator.accumulate(unet):
            loss = compute_loss(batch, unet, vae, text_encoder, noise_scheduler, weight_dtype)
            avg_loss = accelerator.gather(loss.detach().repeat(args.train_batch_size)).mean()
            train_loss += avg_loss.item() / args.gradient_accumulation_steps
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(unet.parameters(), args.max_grad_norm)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        if not accelerator.sync_gradients:
            continue
        if ema_unet is not None:
            ema_unet.step(unet.parameters())
        global_step += 1
        record = {"step": global_step, "loss": train_loss, "lr": lr_scheduler.get_last_lr()[0],
                  "negatives": negatives, "seconds": round(time.perf_counter() - started, 3)}
        accelerator.log({"train_loss": train_loss}, step=global_step)
        if accelerator.is_main_process:
            with (output_dir / LOSS_LOG).open("a") as log:
                log.write(json.dumps(record) + "\n")
            if not math.isfinite(train_loss):
                logger.warning("non-finite loss at step %d", global_step)
        train_loss, negatives = 0.0, 0
        if global_step % args.checkpointing_steps == 0:
            if accelerator.is_main_process:
                prune_checkpoints(output_dir, args.checkpoints_total_limit)
            accelerator.wait_for_everyone()
            accelerator.save_state(str(output_dir / f"checkpoint-{global_step}"))
        if accelerator.is_main_process and global_step % args.validation_steps == 0:
            log_validation(global_step)

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        final_unet = accelerator.unwrap_model(unet)
        if ema_unet is not None:
            ema_unet.copy_to(final_unet.parameters())
        # The frozen VAE and text encoder are saved as loaded (full precision), from disk.
        pipeline = StableDiffusionPipeline.from_pretrained(pretrained, unet=final_unet)
        pipeline.save_pretrained(output_dir)
        # Proof of what training did: the UNet against the base's, and the VAE and text
        # encoder used in training (in their training dtype) against the ones on disk.
        checked = weight_report(final_unet, UNet2DConditionModel.from_pretrained(
            pretrained, subfolder="unet"), {"vae": (vae, pipeline.vae),
                                            "text_encoder": (text_encoder, pipeline.text_encoder)})
        (logger.info if checked["ok"] else logger.error)("weights: %s", describe(checked))
        (output_dir / ROPO_FILE).write_text(json.dumps({
            "positive_identifier": args.positive_identifier,
            "negative_identifier": args.negative_identifier,
            "identifiers": args.identifiers,
            "positive_ratio": args.positive_ratio, "steps": global_step,
            "prediction_type": base.prediction_type, "weights_check": checked,
            "captions": caption_record(captions),
        }, indent=2))
        if global_step % args.validation_steps != 0:
            log_validation(global_step)
        accelerator.print(f"saved the refined model to {output_dir}")
    accelerator.end_training()


if __name__ == "__main__":
    main()
