"""Offline workarounds for pyiqa 0.1.16 without editing site-packages (see REFERENCE.md)."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def install_import_shims() -> None:
    """openai-clip imports pkg_resources (gone from new setuptools); Q-Align imports icecream."""
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        import packaging.version

        shim = types.ModuleType("pkg_resources")
        shim.packaging = packaging  # clip only uses pkg_resources.packaging.version.parse
        sys.modules["pkg_resources"] = shim
    try:
        import icecream  # noqa: F401
    except ImportError:
        shim = types.ModuleType("icecream")
        shim.ic = lambda *args: args[0] if len(args) == 1 else (args or None)
        sys.modules["icecream"] = shim


@contextmanager
def timm_without_download(**overrides: Any) -> Iterator[None]:
    """MANIQA calls timm.create_model(..., pretrained=True): force False (the full checkpoint
    carries the backbone weights) and apply architecture overrides for tiny test models."""
    import timm

    original = timm.create_model

    def create_model(name: str, pretrained: bool = False, **kwargs: Any):
        return original(name, pretrained=False, **{**kwargs, **overrides})

    timm.create_model = create_model
    try:
        yield
    finally:
        timm.create_model = original
