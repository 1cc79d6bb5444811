"""The [review] config section: leases, undo window, scores shown, previews, login rate limit."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ReviewConfig:
    stage_input: str = (
        "review_queue"  # images that passed this stage form the queue ("ingest": all)
    )
    lease_s: float = 300.0  # how long a claimed image stays reserved for its reviewer
    undo_window_s: float = 300.0  # how long a reviewer may take back their last vote
    show_scores: bool = False  # blind by default: scores could anchor the reviewer
    preview_max_side: int = 1280  # longest side of the fit-view JPEG
    crop_size: int = 320  # side of each 1:1 crop for pixel-peeping
    crops: int = 3  # 1:1 crops shown per image (centre + the most detailed regions)
    preview_quality: int = 90  # JPEG quality of previews and crops
    memory_cache_mb: int = 128  # in-process cache of prepared previews (disk cache is unbounded)
    login_attempts: int = 5  # failed logins allowed per username ...
    login_window_s: float = 300.0  # ... within this many seconds

