"""The [review] config section: leases, undo window, scores shown, previews, login rate limit."""

from __future__ import annotations

from dataclasses import dataclass

from hfaid_core.settings.ranges import ranged


@dataclass
class ReviewConfig:
    stage_input: str = (
        "review_queue"  # images that passed this stage form the queue ("ingest": all)
    )
    lease_s: float = ranged(300.0, 1)  # how long a claimed image stays reserved for its reviewer
    undo_window_s: float = ranged(300.0, 0)  # how long a reviewer may take back their last vote
    show_scores: bool = False  # blind by default: scores could anchor the reviewer
    preview_max_side: int = ranged(1280, 16)  # longest side of the fit-view JPEG
    crop_size: int = ranged(320, 16)  # side of each 1:1 crop for pixel-peeping
    crops: int = ranged(3, 0)  # 1:1 crops shown per image (centre + the most detailed regions)
    preview_quality: int = ranged(90, 1, 100)  # JPEG quality of previews and crops
    # in-process cache of prepared previews (disk cache is unbounded)
    memory_cache_mb: int = ranged(128, 0)
    login_attempts: int = ranged(5, 1)  # failed logins allowed per username ...
    login_window_s: float = ranged(300.0, 0)  # ... within this many seconds

