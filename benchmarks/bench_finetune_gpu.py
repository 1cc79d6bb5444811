"""GPU fine-tuning: SD-2.1-sized UNet at 512 px, batch 8, with/without gradient checkpointing.

    .venv/bin/python benchmarks/bench_finetune_gpu.py [--small] [--batch-size 8]

Measures what `hfaid finetune` spends per optimizer step on the UNet (the only trained part):
bf16 autocast over fp32 master weights (accelerate's mixed_precision="bf16"), AdamW, v-prediction
shaped targets; latents 64x64 (512 px / 8) and 77x1024 text states as the frozen VAE and text
encoder would give. Reports steps/s and peak CUDA memory. Without CUDA it says so and exits 0.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

# stabilityai/stable-diffusion-2-1 unet/config.json (865M parameters).
SD21_UNET = dict(
    sample_size=96, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                      "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                    "CrossAttnUpBlock2D"),
    cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), use_linear_projection=True,
    upcast_attention=True,
)


def measure(checkpointing: bool, batch: int, resolution: int, steps: int, warmup: int) -> dict:
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**SD21_UNET).cuda().train()
    if checkpointing:
        unet.enable_gradient_checkpointing()
    optimizer = torch.optim.AdamW(unet.parameters(), lr=5e-5)
    side = resolution // 8
    latents = torch.randn(batch, 4, side, side, device="cuda")
    states = torch.randn(batch, 77, 1024, device="cuda")
    target = torch.randn_like(latents)
    torch.cuda.reset_peak_memory_stats()

    def step() -> None:
        t = torch.randint(0, 1000, (batch,), device="cuda")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            pred = unet(latents, t, states, return_dict=False)[0]
        F.mse_loss(pred.float(), target).backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - started) / steps
    peak = torch.cuda.max_memory_allocated() / 2**30
    params = sum(p.numel() for p in unet.parameters()) / 1e6
    return {"steps_per_s": 1 / seconds, "peak_gib": peak, "params_m": params}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="Fewer timed steps.")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--resolution", type=int, default=512)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: not measured")
        return
    steps, warmup = (5, 2) if args.small else (20, 3)
    print(f"{torch.cuda.get_device_name()}; batch {args.batch_size}; {args.resolution} px; "
          f"bf16 autocast; {steps} timed steps")
    for checkpointing in (False, True):
        r = measure(checkpointing, args.batch_size, args.resolution, steps, warmup)
        torch.cuda.empty_cache()  # the model of the last run is gone: start the next one clean
        print(f"gradient checkpointing {'on ' if checkpointing else 'off'}: "
              f"{r['steps_per_s']:.2f} steps/s, {r['steps_per_s'] * args.batch_size:.1f} img/s, "
              f"peak {r['peak_gib']:.1f} GiB ({r['params_m']:.0f}M parameters)")


if __name__ == "__main__":
    main()
