"""Built-in reference methods: the LR inputs upsampled by a classical filter (no SR model)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from curation.evaluate.testset import TestSet, png_bytes
from hfaid_core.errors import HfaidError

BASELINES = ("bicubic", "lanczos")


def upsample(lr: np.ndarray, scale: int, kind: str) -> np.ndarray:
    """An RGB array enlarged `scale` times by Pillow's bicubic or Lanczos filter."""
    from PIL import Image

    filters = {"bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}
    image = Image.fromarray(lr)
    return np.asarray(image.resize((lr.shape[1] * scale, lr.shape[0] * scale), filters[kind]))


def check_baselines(names: list[str]) -> list[str]:
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise HfaidError(f"--baseline {', '.join(unknown)}: known are {', '.join(BASELINES)}")
    return names


def write_baseline(test_set: TestSet, kind: str) -> Path:
    """<set>/baselines/<kind>/<name>.png for every LR image; files that already hold the same
    bytes are left alone, so a re-run writes nothing."""
    from PIL import Image

    folder = test_set.folder / "baselines" / kind
    folder.mkdir(parents=True, exist_ok=True)
    scale = int(test_set.protocol["scale"])
    for name in test_set.names:
        with Image.open(test_set.lr_path(name)) as img:
            lr = np.asarray(img.convert("RGB"))
        data = png_bytes(upsample(lr, scale, kind))
        path = folder / f"{name}.png"
        if not path.is_file() or path.read_bytes() != data:
            tmp = path.with_name(f".tmp-{path.name}")
            tmp.write_bytes(data)
            os.replace(tmp, path)
    return folder
