"""`hfaid finetune` (accelerate launch of train_ropo.py), `hfaid generate`, `hfaid tiny-sd`."""

from __future__ import annotations

import json
import math
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

import training
from hfaid.app import app
from hfaid.lifecycle import wait_child
from hfaid.options import CatalogOpt, ConfigOpt, recorded_run, resolve
from hfaid.output import print_summary
from hfaid_core.errors import HfaidError
from hfaid_core.settings.degrade import DegradationConfig
from training.bases import BASES, DEFAULT_BASE, resolve_base
from training.captions import check_policy
from training.checks import check_shards, find_shards
from training.infer import (
    IDENTIFIER_MODES,
    ROPO_FILE,
    TRAIN_IDENTIFIER_MODES,
    check_identifier_mode,
)

TRAIN_SCRIPT = Path(training.__file__).resolve().parent / "train_ropo.py"
MIXED_PRECISION = ("auto", "no", "fp16", "bf16")


def resolve_mixed_precision(value: str) -> str:
    """"auto": bf16 on GPUs that support it, else fp16 on CUDA, "no" on CPU."""
    if value not in MIXED_PRECISION:
        raise HfaidError(f"--mixed-precision must be one of {', '.join(MIXED_PRECISION)}")
    if value != "auto":
        return value
    import torch

    if not torch.cuda.is_available():
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def launch_command(script_args: list[str], num_processes: int, mixed_precision: str) -> list[str]:
    """`accelerate launch` in this interpreter, so the venv's packages are the ones used."""
    launcher = [sys.executable, "-m", "accelerate.commands.launch",
                "--num_processes", str(num_processes), "--num_machines", "1",
                "--mixed_precision", mixed_precision, "--dynamo_backend", "no"]
    if num_processes > 1:
        launcher.append("--multi_gpu")
    return [*launcher, str(TRAIN_SCRIPT), *script_args]


def _catalog_run(catalog: Path | None, config: Path | None, command: str,
                 settings: dict[str, Any]):
    """Record the run in the catalog only when one exists: fine-tuning works on files."""
    from contextlib import nullcontext

    cat, _ = resolve(catalog, config)
    if not cat.path.exists():
        return nullcontext(None)
    from db.migrate import migrate

    migrate(cat)
    return recorded_run(cat, command, settings)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def finetune(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option("--data", help="Export folder of WebDataset *.tar shards.")],
    output: Annotated[Path, typer.Option("--output", help="Folder for checkpoints and the model.")],
    base: Annotated[str | None, typer.Option(
        "--base", "--pretrained",
        help=f"{' | '.join(BASES)} | PATH (a diffusers SD folder) [default: config, "
             f"{DEFAULT_BASE}: 512 px, epsilon, what SeeSR/StableSR/DiffBIR load].")] = None,
    caption_policy: Annotated[str | None, typer.Option(
        "--caption-policy", help="Captions over the text encoder's 77 tokens: truncate | "
        "first-sentences | drop [default: config, truncate]; always counted and reported.")
    ] = None,
    identifiers: Annotated[str | None, typer.Option(
        "--identifiers", help="both (Algorithm 1) | positive | none: Table 2 ablations; "
        "positive and none train clean samples only [default: config, both].")] = None,
    max_train_steps: Annotated[int | None, typer.Option("--max-train-steps")] = None,
    resolution: Annotated[int | None, typer.Option("--resolution")] = None,
    train_batch_size: Annotated[int | None, typer.Option(
        "--train-batch-size", help="Per GPU.")] = None,
    gradient_accumulation_steps: Annotated[int | None, typer.Option(
        "--gradient-accumulation-steps")] = None,
    learning_rate: Annotated[float | None, typer.Option("--learning-rate")] = None,
    positive_ratio: Annotated[float | None, typer.Option(
        "--positive-ratio", help="r: share of clean [X] samples.")] = None,
    mixed_precision: Annotated[str | None, typer.Option(
        "--mixed-precision", help="auto | no | fp16 | bf16")] = None,
    num_processes: Annotated[int | None, typer.Option("--num-processes", help="GPUs.")] = None,
    dataloader_num_workers: Annotated[int | None, typer.Option("--dataloader-num-workers")] = None,
    checkpointing_steps: Annotated[int | None, typer.Option("--checkpointing-steps")] = None,
    resume_from_checkpoint: Annotated[str | None, typer.Option(
        "--resume-from-checkpoint", help='"latest" or checkpoint-N.')] = None,
    use_ema: Annotated[bool | None, typer.Option("--use-ema/--no-ema")] = None,
    gradient_checkpointing: Annotated[bool | None, typer.Option(
        "--gradient-checkpointing/--no-gradient-checkpointing")] = None,
    validation_prompt: Annotated[list[str] | None, typer.Option(
        "--validation-prompt", help="Caption rendered with identifier guidance (repeatable).")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    allow_empty_captions: Annotated[bool, typer.Option(
        "--allow-empty-captions", help="Accept empty captions (smoke runs, the demo).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check inputs, print the command.")
                       ] = False,
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Fine-tune Stable Diffusion on exported shards (RAP-SR's RPR + ROPO).

    Extra --snake_case options are passed to training/train_ropo.py unchanged.
    """
    _, cfg = resolve(catalog, config)
    ft = cfg.finetune
    # Bad input fails here, in seconds, before accelerate or any model starts.
    shard_set = check_shards(find_shards(data), allow_empty_captions)
    base_info = resolve_base(base or ft.base)
    model = base_info.path
    policy = check_policy(caption_policy or ft.caption_policy)
    mode = check_identifier_mode(identifiers or ft.identifiers, TRAIN_IDENTIFIER_MODES)
    precision = resolve_mixed_precision(mixed_precision or ft.mixed_precision)
    processes = num_processes or ft.num_processes
    opts: dict[str, Any] = {
        "pretrained_model_name_or_path": model, "train_data_dir": data, "output_dir": output,
        "resolution": resolution or ft.resolution,
        "max_train_steps": max_train_steps or ft.max_train_steps,
        "train_batch_size": train_batch_size or ft.train_batch_size,
        "gradient_accumulation_steps": gradient_accumulation_steps
        or ft.gradient_accumulation_steps,
        "learning_rate": learning_rate if learning_rate is not None else ft.learning_rate,
        "positive_ratio": positive_ratio if positive_ratio is not None else ft.positive_ratio,
        "empty_caption_prob": ft.empty_caption_prob,
        "positive_identifier": ft.positive_identifier,
        "negative_identifier": ft.negative_identifier,
        "dataloader_num_workers": dataloader_num_workers if dataloader_num_workers is not None
        else ft.dataloader_num_workers,
        "checkpointing_steps": checkpointing_steps or ft.checkpointing_steps,
        "checkpoints_total_limit": ft.checkpoints_total_limit,
        "validation_guidance_scale": ft.guidance_scale,
        "validation_inference_steps": ft.inference_steps,
        "resume_from_checkpoint": resume_from_checkpoint, "seed": seed,
        "caption_policy": policy, "identifiers": mode,
    }
    _check_numbers(opts)
    captions = _caption_report(model, shard_set.captions, opts, policy)
    script_args = [f"--{k}={v}" for k, v in opts.items() if v is not None]
    if use_ema if use_ema is not None else ft.use_ema:
        script_args.append("--use_ema")
    if gradient_checkpointing if gradient_checkpointing is not None else ft.gradient_checkpointing:
        script_args.append("--gradient_checkpointing")
    if allow_empty_captions:
        script_args.append("--allow_empty_captions")
    if cfg.degrade != DegradationConfig():  # negatives use the config's [degrade], like export
        compact = json.dumps(cfg.section("degrade"), separators=(",", ":"))
        script_args.append(f"--degradation_config={compact}")
    if validation_prompt:
        script_args += ["--validation_prompts", *validation_prompt]
    script_args += ctx.args
    command = launch_command(script_args, processes, precision)
    # On stderr: a dry run's stdout is the command alone.
    print(f"base: {base_info.describe()}", file=sys.stderr)
    print(f"captions: {captions}", file=sys.stderr)
    if dry_run:
        print(shlex.join(command))
        return

    settings = {"command": command, "samples": shard_set.samples, "base": str(model),
                "captions": captions, "finetune": cfg.section("finetune")}
    started = time.perf_counter()
    with _catalog_run(catalog, config, "finetune", settings) as run:
        # accelerate's launcher does not pass signals on to the training process it starts, so
        # both get a process group of their own, which Ctrl-C / SIGTERM / SIGHUP reach as one:
        # stopping `hfaid finetune` leaves no trainer behind (resume: --resume-from-checkpoint).
        code = wait_child(subprocess.Popen(command, start_new_session=True), own_group=True)
        if code != 0:
            raise HfaidError(f"training exited with status {code}; see its output above")
        summary = _training_summary(output)
        if run is not None:
            run.counts = summary
    print_summary(f"finetune -> {output}", {
        "samples in shards": shard_set.samples, "shards": len(shard_set.shards),
        **summary, "seconds": time.perf_counter() - started,
    })


def _caption_report(model: Path, captions: dict[str, str], opts: dict[str, Any],
                    policy: str) -> str:
    """The caption plan's one line, before anything starts (the script logs it again)."""
    from transformers import CLIPTokenizer

    from training.captions import plan_captions
    from training.train_ropo import RopoConfig

    cfg = RopoConfig(positive_identifier=opts["positive_identifier"],
                     negative_identifier=opts["negative_identifier"],
                     identifiers=opts["identifiers"])
    tokenizer = CLIPTokenizer.from_pretrained(model, subfolder="tokenizer")
    return plan_captions(captions, tokenizer, cfg.prefixes(), policy).summary()


def _check_numbers(opts: dict[str, Any]) -> None:
    """The script's own range checks, repeated here so they fail before accelerate starts."""
    for name in ("max_train_steps", "train_batch_size", "gradient_accumulation_steps",
                 "checkpointing_steps", "resolution"):
        if opts[name] < 1:
            raise HfaidError(f"--{name.replace('_', '-')} must be >= 1, got {opts[name]}")
    if opts["resolution"] % 8:
        raise HfaidError(f"--resolution must be a multiple of 8, got {opts['resolution']}")
    for name in ("positive_ratio", "empty_caption_prob"):
        if not 0.0 <= opts[name] <= 1.0:
            raise HfaidError(f"{name} must lie in [0, 1], got {opts[name]}")


def _training_summary(output: Path) -> dict[str, Any]:
    """Steps and the last logged loss, from the script's JSONL log."""
    log = output / "logs" / "train_log.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    last = rows[-1] if rows else {}
    loss = last.get("loss", float("nan"))
    summary = {"steps": last.get("step", 0), "last loss": loss,
               "loss finite": "yes" if rows and all(math.isfinite(r["loss"]) for r in rows)
               else "no"}
    ropo = output / ROPO_FILE
    checked = json.loads(ropo.read_text()).get("weights_check") if ropo.is_file() else None
    if checked:
        from training.weight_check import describe

        summary["weights"] = describe(checked)
    return summary


@app.command()
def generate(
    model: Annotated[Path, typer.Option("--model", help="A diffusers folder (e.g. finetune's).")],
    output: Annotated[Path, typer.Option("--output", help="Folder for NNNN.png images.")],
    prompt: Annotated[list[str] | None, typer.Option(
        "--prompt", help="Caption without identifiers (repeatable).")] = None,
    prompts_file: Annotated[Path | None, typer.Option(
        "--prompts-file", help="One caption per line.")] = None,
    guidance_scale: Annotated[float | None, typer.Option(
        "--guidance-scale", help="The paper's s: eps_pos + s (eps_pos - eps_neg).")] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="Denoising steps.")] = None,
    resolution: Annotated[int | None, typer.Option("--resolution")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    device: Annotated[str | None, typer.Option("--device", help="cuda | cpu [default: auto]")
                      ] = None,
    identifiers: Annotated[str | None, typer.Option(
        "--identifiers", help=f"{' | '.join(IDENTIFIER_MODES)}: which identifiers prompt and "
        "negative prompt carry (Table 2 ablations) [default: the model's training mode].")
    ] = None,
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Text-to-image with identifier guidance: prompt "[X] caption", negative "[V] caption"."""
    from training.infer import generate_to_folder

    _, cfg = resolve(catalog, config)
    captions = list(prompt or [])
    if prompts_file is not None:
        if not prompts_file.is_file():
            raise HfaidError(f"--prompts-file {prompts_file} does not exist")
        captions += [line.strip() for line in prompts_file.read_text().splitlines()
                     if line.strip()]
    scale = guidance_scale if guidance_scale is not None else cfg.finetune.guidance_scale
    started = time.perf_counter()
    paths = generate_to_folder(model, captions, output, scale,
                               steps or cfg.finetune.inference_steps, seed, resolution,
                               device=device, identifiers=identifiers)
    print_summary(f"generate -> {output}", {
        "images": len(paths), "guidance s": scale, "seconds": time.perf_counter() - started,
    })


@app.command("tiny-sd")
def tiny_sd(
    folder: Annotated[Path, typer.Argument(help="Where to write the model folder.")],
    seed: Annotated[int, typer.Option("--seed")] = 0,
    prediction_type: Annotated[str, typer.Option(
        "--prediction-type", help="epsilon (like SD 2.1-base) | v_prediction (like SD 2.1)")
    ] = "epsilon",
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Write a tiny random-weight Stable Diffusion folder (smoke tests and the demo)."""
    from training.tiny_sd import build_tiny_pipeline

    if prediction_type not in ("epsilon", "v_prediction"):
        raise HfaidError(f"--prediction-type must be epsilon or v_prediction, "
                         f"got {prediction_type!r}")
    build_tiny_pipeline(folder, seed=seed, prediction_type=prediction_type)
    print(f"wrote a tiny random Stable Diffusion to {folder}")
