"""After training: did the UNet move, and did the frozen VAE and text encoder stay as loaded?"""

from __future__ import annotations

import math

import torch


def parameter_change(current: torch.nn.Module, reference: torch.nn.Module) -> dict:
    """Tensors that differ and the relative L2 change ||current - reference|| / ||reference||,
    compared in the current module's dtype (frozen parts may run in bf16/fp16)."""
    ref = reference.state_dict()
    changed = total = 0
    diff_sq = ref_sq = 0.0
    with torch.no_grad():
        for name, value in current.state_dict().items():
            base = ref[name].to(device=value.device, dtype=value.dtype)
            total += 1
            if not torch.equal(value, base):
                changed += 1
            if value.is_floating_point():
                diff_sq += float((value.double() - base.double()).pow(2).sum())
                ref_sq += float(base.double().pow(2).sum())
    return {"tensors": total, "changed": changed,
            "relative_change": math.sqrt(diff_sq / ref_sq) if ref_sq else 0.0}


def weight_report(unet: torch.nn.Module, base_unet: torch.nn.Module,
                  frozen: dict[str, tuple[torch.nn.Module, torch.nn.Module]]) -> dict:
    """{"unet": change, "<frozen part>": change, "ok": the UNet moved and no frozen part did}.
    `frozen` maps a name to (the module used in training, the same part loaded from disk)."""
    report = {"unet": parameter_change(unet, base_unet)}
    for name, (used, loaded) in frozen.items():
        report[name] = parameter_change(used, loaded)
    report["ok"] = report["unet"]["changed"] > 0 and all(
        report[name]["changed"] == 0 for name in frozen)
    return report


def describe(report: dict) -> str:
    """One line: how many UNet tensors moved, and whether the frozen parts stayed put."""
    unet = report["unet"]
    parts = [f"UNet: {unet['changed']}/{unet['tensors']} tensors changed "
             f"(relative change {unet['relative_change']:.3g})"]
    for name, change in report.items():
        if name in ("unet", "ok"):
            continue
        parts.append(f"{name}: " + ("unchanged" if change["changed"] == 0 else
                                    f"{change['changed']} tensors CHANGED (should be frozen)"))
    return "; ".join(parts)
