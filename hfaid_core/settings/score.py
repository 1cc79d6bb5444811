"""The [score] and [weights] config sections (kept free of torch so config loads fast)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from hfaid_core.settings.ranges import ranged


@dataclass
class ScoreConfig:
    metrics: list[str] = field(default_factory=lambda: ["maniqa", "clipiqa", "niqe"])  # stage 2
    stage_input: str = "dedup"  # score images that passed this stage ("" = every image)
    device: str = "auto"  # auto (cuda if available) | cuda | cuda:N | cpu
    dtype: str = "auto"  # auto: fp32 on CPU; bf16/fp16 on GPU only for metrics declared safe
    batch_size: int = ranged(0, 0)  # 0 = each metric's default
    # DataLoader processes decoding next to the model; -1 = auto (decode_workers_for)
    decode_workers: int = ranged(-1, -1)
    workers: int = ranged(1, 1)  # model processes (local) or actors (ray); >1 for CPU metrics
    engine: str = "local"  # local | ray
    ray_address: str = ""  # "" = start a local Ray cluster
    quantize: str = ""  # "", "8bit" or "4bit" for metrics that support it (Q-Align)
    # Images per shard on a GPU (0 = [runner] shard_size). At 256 a fast metric's shard lasts
    # under a second and restarts the decode pipeline (1024: 1.00-1.08x faster on an H100);
    # a kill still loses only seconds of work.
    gpu_shard_size: int = ranged(1024, 0)


@dataclass
class WeightsConfig:
    dir: str = ""  # "" = $HFAID_WEIGHTS_DIR or ~/.cache/hfaid/weights


def on_gpu(device: str) -> bool:
    return device.startswith("cuda")


def shard_size_for(device: str, gpu_shard_size: int, shard_size: int) -> int:
    """Images per shard: [score] gpu_shard_size on a GPU (when set), else [runner] shard_size."""
    return gpu_shard_size if on_gpu(device) and gpu_shard_size > 0 else shard_size


CPU_DECODE_WORKERS = 2  # a CPU model process uses the cores itself; 2 measured best here
GPU_DECODE_WORKERS = 8  # what the H100 benchmarks used; fast metrics are decode-bound below it


def decode_workers_for(device: str, requested: int) -> int:
    """DataLoader decode processes: as requested, or for -1 (auto) by where the model runs.

    A GPU leaves the host's cores to decoding: fast metrics (CLIP-IQA, BRISQUE) took 300 img/s
    from 8 workers at 1080x800 before workers reused their shared buffers, so 2 workers would
    have capped them near 75 img/s (estimated).
    """
    if requested >= 0:
        return requested
    if on_gpu(device):
        return min(GPU_DECODE_WORKERS, max(1, (os.cpu_count() or 2) - 1))
    return CPU_DECODE_WORKERS
