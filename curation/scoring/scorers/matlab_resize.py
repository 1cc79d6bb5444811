"""pyiqa's MATLAB-style `imresize` (bicubic, antialiased): its sums, without unfolding the image."""

from __future__ import annotations

import math

import torch


def imresize(x: torch.Tensor, scale: float) -> torch.Tensor:
    """pyiqa 0.1.16 `matlab_utils.imresize(x, scale=scale, antialiasing=True)` with its defaults
    (cubic kernel, reflect padding), bit for bit. Like pyiqa it computes in float32 whatever
    the input's dtype (its `cast_input` casts every dtype) and returns the input's dtype."""
    from pyiqa.matlab_utils.resize import cast_input, cast_output, reshape_input, reshape_output

    x, b, c, h, w = reshape_input(x)
    x, dtype = cast_input(x)
    x = resize_1d(x, -2, math.ceil(h * scale), scale)
    x = resize_1d(x, -1, math.ceil(w * scale), scale)
    return cast_output(reshape_output(x, b, c), dtype)


def resize_1d(x: torch.Tensor, dim: int, size: int, scale: float) -> torch.Tensor:
    """pyiqa's `resize_1d` (cubic, antialiased, reflect padding) on an (N, 1, H, W) tensor.

    pyiqa unfolds every input position's kernel_size taps (10 for a halving) and then keeps the
    output positions' rows. Here only those are gathered, into a tensor of the same shape and
    layout (N, taps, outputs...), so the product with the weights and the sum over the taps are
    the same operations on the same values. Output positions that step evenly through the
    input (any integer downscale) are read as strided views, with no index gather at all."""
    from pyiqa.matlab_utils.resize import get_padding, get_weight, padding

    if scale == 1:
        return x
    kernel_size = 4
    antialiasing_factor = scale if scale < 1 else 1
    if scale < 1:
        kernel_size = math.ceil(kernel_size / antialiasing_factor)
    kernel_size += 2
    with torch.no_grad():
        pos = torch.linspace(0, size - 1, steps=size, dtype=x.dtype, device=x.device)
        pos = (pos + 0.5) / scale - 0.5
        base = pos.floor() - (kernel_size // 2) + 1
        dist = pos - base
        weight = get_weight(dist, kernel_size, antialiasing_factor=antialiasing_factor)
        pad_pre, pad_post, base = get_padding(base, kernel_size, x.size(dim))
    x_pad = padding(x, dim, pad_pre, pad_post)
    sample = _taps(x_pad[:, 0], base, kernel_size, rows=dim in (2, -2))
    if dim in (2, -2):
        weight = weight.view(1, kernel_size, sample.size(2), 1)
    else:
        weight = weight.view(1, kernel_size, 1, sample.size(3))
    return (sample * weight).sum(dim=1, keepdim=True)


def _taps(x: torch.Tensor, base: torch.Tensor, taps: int, rows: bool) -> torch.Tensor:
    """(N, taps, outputs, W) for rows, (N, taps, H, outputs) for columns, contiguous: element
    [n, k, t] is x at position base[t] + k along the resized axis (pyiqa's unfold, sampled)."""
    first, count = int(base[0]), base.numel()
    steps = (base[1:] - base[:-1]).unique()
    step = int(steps[0]) if steps.numel() else 1
    if steps.numel() <= 1 and step > 0:  # evenly spaced outputs (or one): strided views
        stop = first + step * (count - 1) + 1
        if rows:
            return torch.stack([x[:, first + k : stop + k : step] for k in range(taps)], dim=1)
        return torch.stack([x[:, :, first + k : stop + k : step] for k in range(taps)], dim=1)
    index = base[None, :] + torch.arange(taps, device=base.device)[:, None]  # (taps, outputs)
    if rows:
        return x[:, index, :]
    return x[:, torch.arange(x.size(1), device=x.device)[None, :, None], index[:, None, :]]
