"""`hfaid demo`: the config and the recipe that run every pipeline stage on the demo pool."""

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

# The demo's recipe (`hfaid run`, docs/CONFIG.md "Recipes"); "{dir}" is the demo folder. Each
# stage adds its step here, in pipeline order.
DEMO_RECIPE = """\
[recipe]
name = "demo"

[[step]]
command = "ingest"
sources = ["{dir}/pool"]

[[step]]
command = "clean"

[[step]]
command = "dedup"

# stage 2 with the metrics whose parameters ship with hfaid (no weights needed); the aesthetic
# stage is not scored (Q-Align is 7B), so the funnel shows it as "not run"
[[step]]
name = "score-quality"
command = "score"
metrics = ["niqe", "brisque"]
stage_input = "dedup"
device = "cpu"

[[step]]
command = "select"
stage = "quality"

[[step]]
command = "select"
stage = "aesthetic"

[[step]]
command = "select"
stage = "review"

[[step]]
command = "report"
out = "{dir}/report"

# A preview of training before reviews exist: the review queue as shards (no captions yet, so
# captions = "any") with Real-ESRGAN-degraded x4 inputs, a tiny random SD (no SD 2.1 offline)
# fine-tuned for 2 steps on them, then images generated with identifier guidance.
[[step]]
name = "preview-export"
command = "export"
format = "webdataset"
out = "{dir}/export-preview"
status = "queued"
captions = "any"
pairs = true
maxcount = 16
overwrite = true

[[step]]
command = "tiny-sd"
folder = "{dir}/tiny-sd"

[[step]]
command = "finetune"
data = "{dir}/export-preview"
base = "{dir}/tiny-sd"
output = "{dir}/finetuned"
max_train_steps = 2
resolution = 32
train_batch_size = 2
gradient_accumulation_steps = 1
dataloader_num_workers = 0
allow_empty_captions = true

[[step]]
command = "generate"
model = "{dir}/finetuned"
prompt = ["a photograph"]
output = "{dir}/generated"
steps = 4
resolution = 32
device = "cpu"

# The paper's SR test protocol on 8 bundled real photos (HR 512 crops, Real-ESRGAN LR x4) with
# bicubic and Lanczos reference columns; rows of metrics without weights say so.
[[step]]
command = "evaluate"
test_set = "{dir}/eval"
hr = "bundled"
baseline = "bicubic,lanczos"

# Where people take over: the run stops here until alice and bob decided the queue in
# `hfaid review`; running the recipe again then captions and exports the accepted images.
[[step]]
name = "reviews"
command = "await-reviews"

[[step]]
command = "caption"
stage_input = "accepted"
optional = true  # Florence-2 weights are not bundled: without them the step is skipped

[[step]]
command = "export"
out = "{dir}/export"
captions = "any"
overwrite = true
"""


def demo_recipe(demo_dir: Path) -> str:
    """The demo recipe with the demo folder's absolute path filled in (as a TOML string body)."""
    folder = str(demo_dir.resolve()).replace("\\", "\\\\").replace('"', '\\"')
    return DEMO_RECIPE.replace("{dir}", folder)
