"""`hfaid demo`: build a small real-photo pool and run every pipeline stage that exists on it."""

from __future__ import annotations

from pathlib import Path

# Thresholds scaled for the demo's sub-megapixel photos; the defaults target 2-4 MP pools.
DEMO_CONFIG = """\
[runner]
shard_size = 64
"""

# Each stage adds its command here, in pipeline order; "{catalog}", "{config}" and "{dir}"
# are filled in. A step runs through the same CLI entry point a user types.
DEMO_STEPS: list[list[str]] = [
    ["ingest", "{dir}/pool"],
]


def demo_argv(step: list[str], demo_dir: Path) -> list[str]:
    """A step's argv with placeholders filled and the demo catalog and config appended."""
    catalog, config = demo_dir / "hfaid.duckdb", demo_dir / "hfaid.toml"
    filled = [a.format(dir=demo_dir, catalog=catalog, config=config) for a in step]
    return [*filled, "--catalog", str(catalog), "--config", str(config)]
