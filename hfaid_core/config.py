"""Typed TOML configuration: one dataclass per section, unknown keys rejected by name."""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hfaid_core.errors import HfaidError
from hfaid_core.settings.caption import CaptionConfig  # [caption]: Florence-2 captioning
from hfaid_core.settings.decode import DecodeConfig  # [decode]: pixel and memory budget
from hfaid_core.settings.degrade import DegradationConfig  # [degrade]: Real-ESRGAN pairs
from hfaid_core.settings.evaluate import EvaluateConfig  # [evaluate]: the SR test protocol
from hfaid_core.settings.export import ExportConfig  # [export]: shards / imagefolder
from hfaid_core.settings.finetune import FinetuneConfig  # [finetune]: RPR + ROPO fine-tuning
from hfaid_core.settings.policy import PolicyConfig  # [policy]: the funnel's selection rules
from hfaid_core.settings.ranges import check_value, ranged
from hfaid_core.settings.review import ReviewConfig  # [review]: the review app
from hfaid_core.settings.score import ScoreConfig, WeightsConfig  # [score], [weights]
from hfaid_core.settings.stage1 import CleanConfig, DedupConfig  # [clean], [dedup]


@dataclass
class CatalogConfig:
    lock_timeout_s: float = ranged(60.0, 0)  # how long to wait for another process's write lock


@dataclass
class RunnerConfig:
    workers: int = ranged(0, 0)  # 0 = one per CPU core
    shard_size: int = ranged(256, 1)  # images per shard (result file)
    backend: str = "local"  # local | ray


@dataclass
class IngestConfig:
    extensions: list[str] = field(
        default_factory=lambda: [
            ".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif",
            ".avif", ".heic", ".heif", ".jxl",  # decoded where their Pillow plugin is installed
        ]
    )
    path_column: str = "path"  # column holding paths in Parquet/CSV sources
    follow_symlinks: bool = True


@dataclass
class Config:
    catalog: CatalogConfig = field(default_factory=CatalogConfig)
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    clean: CleanConfig = field(default_factory=CleanConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    weights: WeightsConfig = field(default_factory=WeightsConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    caption: CaptionConfig = field(default_factory=CaptionConfig)
    review: ReviewConfig = field(default_factory=ReviewConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    degrade: DegradationConfig = field(default_factory=DegradationConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)

    def section(self, name: str) -> dict[str, Any]:
        """One section as a plain dict, for recording in runs."""
        return dataclasses.asdict(getattr(self, name))


def load_config(path: Path | None) -> Config:
    """Read a TOML file into Config; None gives the documented defaults."""
    if path is None:
        return Config()
    try:
        raw = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise HfaidError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise HfaidError(f"config file {path} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise HfaidError(f"config file {path} is not valid TOML: {exc}") from None
    return _build(Config, raw, where=str(path))


def _build(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise HfaidError(f"{where}: expected a table, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise HfaidError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}"
        )
    values = {name: _coerce(hints[name], value, f"{where}.{name}") for name, value in raw.items()}
    for name, value in values.items():
        check_value(value, *fields[name].metadata.get("range", (None, None)), f"{where}.{name}")
    return cls(**values)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _coerce(options[0], value, where)
    if origin is list:
        (item,) = typing.get_args(hint) or (Any,)
        if not isinstance(value, list):
            raise HfaidError(f"{where}: expected a list, got {value!r}")
        return [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise HfaidError(f"{where}: expected a table, got {value!r}")
        return dict(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and not (
        isinstance(value, hint) and not (hint is int and isinstance(value, bool))
    ):
        raise HfaidError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value
