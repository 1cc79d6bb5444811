"""Which precision a scorer computes in on a device, and the parts kept in float32 under it."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, wraps
from pathlib import Path

import torch

from curation.scoring.scorers.base import ScorerSpec
from hfaid_core.errors import HfaidError

_NAMES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}
# CPU flags (Linux /proc/cpuinfo) for bf16 matrix arithmetic in hardware: without them oneDNN
# emulates bf16 and is slower than float32.
_NATIVE_BF16_FLAGS = {"avx512_bf16", "amx_bf16", "bf16"}  # x86 AVX-512 / AMX, Arm (Features)


@cache
def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """True where this CPU multiplies bf16 matrices in hardware (AVX512-BF16, AMX, Arm BF16)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features") and _NATIVE_BF16_FLAGS & set(value.split()):
            return True
    return False


def requested_dtype(device: torch.device, dtype: str | None) -> torch.dtype | None:
    """The dtype asked for (None: auto), refused where the device cannot run it well."""
    if dtype in (None, "auto"):
        return None
    chosen = _NAMES.get(dtype)
    if chosen is None:
        raise HfaidError(f"--dtype {dtype!r}: use auto, float32, float16 or bfloat16")
    if device.type != "cuda" and chosen == torch.float16:
        raise HfaidError("--dtype float16: half precision on CPU is bfloat16 only; use bfloat16")
    if device.type != "cuda" and chosen == torch.bfloat16 and not cpu_has_native_bf16():
        raise HfaidError(
            "--dtype bfloat16: this CPU has no bf16 arithmetic in hardware (AVX512-BF16, AMX or "
            "Arm BF16), so it would be slower than float32; use float32"
        )
    return chosen


def compute_dtype(spec: ScorerSpec, device: torch.device, dtype: str | None) -> torch.dtype:
    """float64 for classical metrics; half precision on GPU where declared safe, else on request.

    `auto` stays float32 on CPU even where bf16 is fast: the default must not make a CPU
    catalog's scores depend on which CPU generation computed them.
    """
    chosen = requested_dtype(device, dtype)
    if spec.compute_dtype == "float64":
        return torch.float64
    if chosen is None:
        if device.type == "cuda" and spec.half_ok:
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return chosen


def keep_float32(module: torch.nn.Module, names: tuple[str, ...]) -> None:
    """Put the named submodules back in float32 and feed them float32 inputs.

    A score head in bf16 rounds every score to 8 significant bits (steps of ~0.002 near 0.5),
    which ties images a threshold must separate; the head is a few small layers, so float32
    there costs nothing measurable.
    """
    for name in names:
        part = module.get_submodule(name).float()
        part.register_forward_pre_hook(_inputs_to_float32)


def _inputs_to_float32(_module: torch.nn.Module, args: tuple) -> tuple:
    return tuple(a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args)


def autocast_to_float32(
    fn: Callable[..., torch.Tensor], device_type: str, dtype: torch.dtype
) -> Callable[..., torch.Tensor]:
    """fn under autocast to dtype, its output back in float32 for the float32 code after it."""

    @wraps(fn)
    def run(*args, **kwargs) -> torch.Tensor:
        with torch.autocast(device_type, dtype=dtype):
            return fn(*args, **kwargs).float()

    return run
