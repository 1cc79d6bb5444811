"""`hfaid demo`: build a small real-photo pool and run every pipeline stage that exists on it."""

from __future__ import annotations

from pathlib import Path

# Thresholds scaled for the demo's sub-megapixel photos; the defaults target 2-4 MP pools.
DEMO_CONFIG = """\
[runner]
shard_size = 64

# Stage 1 with its shipped cuts; only the size requirement is the demo's (its real-photo
# crops are sub-megapixel).
[clean]
min_short_side = 128

# Selection on the metrics the demo scores (NIQE, BRISQUE); the aesthetic stage keeps its
# default Q-Align rule, which passes everything through with a note while it is unscored.
[[policy.quality.rules]]
metric = "niqe"
keep_fraction = 0.7
[[policy.quality.rules]]
metric = "brisque"
keep_fraction = 0.7
[policy.review]
combine = "rank_fusion"
keep_fraction = 0.8
[[policy.review.rules]]
metric = "niqe"
[[policy.review.rules]]
metric = "brisque"
"""

# Each stage adds its command here, in pipeline order; "{catalog}", "{config}" and "{dir}"
# are filled in. A step runs through the same CLI entry point a user types.
DEMO_STEPS: list[list[str]] = [
    ["ingest", "{dir}/pool"],
    ["clean"],
    ["dedup"],
    # stage 2 scoring with the metrics whose parameters ship with hfaid (no weights needed)
    ["score", "--metrics", "niqe,brisque", "--stage-input", "dedup", "--device", "cpu"],
    # selection over stored scores (after scoring); --if-available: skip while nothing is scored
    ["select", "--stage", "quality", "--if-available"],
    ["select", "--stage", "aesthetic", "--if-available"],
    ["select", "--stage", "review", "--if-available"],
    ["report", "--out", "{dir}/report"],
    # caption (after review, before export); prints a note and goes on without Florence-2 weights
    ["caption", "--if-available"],
    # export the review queue (human votes and captions do not exist in a fresh demo, so
    # --captions any); --pairs adds Real-ESRGAN-degraded x4 inputs; the demo owns its folder
    ["export", "--format", "webdataset", "--out", "{dir}/export", "--status", "queued",
     "--captions", "any", "--pairs", "--maxcount", "16", "--overwrite"],
    # fine-tune a tiny random SD (no SD 2.1 offline) for 2 steps on the export, then generate
    # with identifier guidance; demo captions may be empty, hence --allow-empty-captions
    ["tiny-sd", "{dir}/tiny-sd"],
    ["finetune", "--data", "{dir}/export", "--pretrained", "{dir}/tiny-sd",
     "--output", "{dir}/finetuned", "--max-train-steps", "2", "--resolution", "32",
     "--train-batch-size", "2", "--gradient-accumulation-steps", "1",
     "--dataloader-num-workers", "0", "--allow-empty-captions"],
    ["generate", "--model", "{dir}/finetuned", "--prompt", "a photograph",
     "--output", "{dir}/generated", "--steps", "4", "--resolution", "32", "--device", "cpu"],
    # the paper's SR test protocol on 8 bundled real photos (HR 512 crops, Real-ESRGAN LR x4)
    # with bicubic and Lanczos reference columns; rows of metrics without weights say so
    ["evaluate", "--test-set", "{dir}/eval", "--hr", "bundled", "--baseline", "bicubic,lanczos"],
]


def demo_argv(step: list[str], demo_dir: Path) -> list[str]:
    """A step's argv with placeholders filled and the demo catalog and config appended."""
    catalog, config = demo_dir / "hfaid.duckdb", demo_dir / "hfaid.toml"
    filled = [a.format(dir=demo_dir, catalog=catalog, config=config) for a in step]
    return [*filled, "--catalog", str(catalog), "--config", str(config)]
