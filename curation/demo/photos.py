"""Real photographs that ship inside installed packages (scikit-image, pyiqa, matplotlib)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

# (package, relative path) of colour photographs; found at run time, skipped if absent.
_COLOUR_PHOTOS = (
    ("skimage", "data/astronaut.png"),
    ("skimage", "data/chelsea.png"),
    ("skimage", "data/coffee.png"),
    ("skimage", "data/rocket.jpg"),
    ("skimage", "data/motorcycle_left.png"),
    ("skimage", "data/motorcycle_right.png"),
    ("skimage", "data/retina.jpg"),
    ("skimage", "data/hubble_deep_field.jpg"),
    ("skimage", "data/ihc.png"),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
)
_GRAY_PHOTOS = (("skimage", "data/camera.png"), ("skimage", "data/moon.png"))


def _package_root(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def _site_packages() -> Path | None:
    root = _package_root("pyiqa")
    return root.parent if root else None


def colour_photos() -> list[Path]:
    """Colour photographs available on this machine (at least the scikit-image ones)."""
    found = [p for p in (_resolve(pkg, rel) for pkg, rel in _COLOUR_PHOTOS) if p]
    site = _site_packages()
    if site is not None:
        # pyiqa's wheel ships the LIVE reference images and a few real photos for its tests.
        found += sorted((site / "ResultsCalibra" / "ref_dir").glob("*.bmp"))
        found += sorted((site / "tests" / "test_efficiency_img_dir").glob("*.jpg"))
    return found


def gray_photos() -> list[Path]:
    return [p for p in (_resolve(pkg, rel) for pkg, rel in _GRAY_PHOTOS) if p]


def pyiqa_calibration_dir() -> Path | None:
    """pyiqa's ResultsCalibra folder (dist_dir + ref_dir of five LIVE images), if installed."""
    site = _site_packages()
    folder = site / "ResultsCalibra" if site else None
    return folder if folder and folder.is_dir() else None


def _resolve(package: str, relative: str) -> Path | None:
    root = _package_root(package)
    path = root / relative if root else None
    return path if path and path.is_file() else None
