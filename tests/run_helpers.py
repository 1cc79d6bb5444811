"""Helpers of the `hfaid run` tests: a demo-scale config, recipe pieces, and a catalog's content
without run ids and timestamps."""

from __future__ import annotations

from pathlib import Path

from db.catalog import Catalog

CONFIG = """\
[runner]
workers = 1
shard_size = 2
[catalog]
lock_timeout_s = 30
[clean]
min_short_side = 96
measure_scale = 1
laplacian_min = 10.0
laplacian_max = 6000.0
[[policy.quality.rules]]
metric = "niqe"
keep_fraction = 0.8
[policy.review]
combine = "rank_fusion"
keep_fraction = 0.8
[[policy.review.rules]]
metric = "niqe"
[[policy.review.rules]]
metric = "qalign_aesthetic"
weight = 2.0
"""

QUALITY = """\
[[step]]
command = "ingest"
sources = ["pool"]
workers = 1

[[step]]
command = "clean"
workers = 1

[[step]]
command = "dedup"

[[step]]
name = "score-quality"
command = "score"
metrics = ["niqe"]
stage_input = "dedup"
device = "cpu"
decode_workers = 0

[[step]]
command = "select"
stage = "quality"
"""

AESTHETIC = """\
[[step]]
name = "score-aesthetic"
command = "score"
metrics = ["qalign_aesthetic"]
stage_input = "quality"
device = "cpu"
decode_workers = 0
weights_dir = "{weights}"
{optional}
"""

SELECTIONS = """\
[[step]]
command = "select"
stage = "aesthetic"

[[step]]
command = "select"
stage = "review"
"""

REVIEW_AND_AFTER = """\
[[step]]
name = "reviews"
command = "await-reviews"

[[step]]
command = "caption"
model = "{model}"
device = "cpu"
batch_size = 4

[[step]]
command = "export"
out = "export"
captions = "any"
overwrite = true
"""


def snapshot(path: Path) -> dict[str, list]:
    """Images, paths, outcomes and scores of a catalog, in a fixed order."""
    with Catalog(path).connect(read_only=True) as con:
        return {
            "images": con.execute("SELECT image_id, bytes, width, height FROM images "
                                  "ORDER BY 1").fetchall(),
            "paths": con.execute("SELECT path, image_id, error FROM paths ORDER BY 1").fetchall(),
            "outcomes": con.execute("SELECT image_id, stage, status, reason, detail "
                                    "FROM stage_outcomes ORDER BY 1, 2").fetchall(),
            "scores": con.execute("SELECT image_id, metric, value, version FROM scores "
                                  "ORDER BY 1, 2, 4").fetchall(),
        }
