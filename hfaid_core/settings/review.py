"""The [review] config section: queue and leases, voting rules, previews, sessions and logins."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ReviewConfig:
    stage_input: str = (
        "review_queue"  # images that passed this stage form the queue ("ingest": all)
    )
    lease_s: float = 300.0  # how long a claimed image stays reserved for its reviewer
    prefetch_ahead: int = 3  # images leased and loaded into the browser beyond the one shown
    undo_window_s: float = 300.0  # how long a reviewer may take back or change a vote
    repeat_guard_ms: int = 400  # a vote key or click this soon after a new image is ignored
    reject_needs_reason: bool = True  # a reject must name at least one reason
    skips_to_admin: int = 2  # distinct reviewers unsure about an image send it to an admin
    queue_sync_s: float = 60.0  # how often the server looks for new images in the input stage
    show_scores: bool = False  # blind by default: scores could anchor the reviewer
    preview_max_side: int = 1280  # longest side of the fit-view JPEG (never enlarged)
    crop_size: int = 320  # side of each 1:1 crop for pixel-peeping
    crops: int = 3  # 1:1 crops shown per image (centre + the most detailed regions)
    preview_quality: int = 90  # JPEG quality of previews and crops (4:4:4, no chroma halving)
    memory_cache_mb: int = 128  # in-process cache of prepared previews (disk cache is unbounded)
    session_hours: float = 12.0  # a login lasts this long (reload and new tabs keep it)
    login_attempts: int = 5  # failed logins per (name, client address) before delays start ...
    login_delay_s: float = 1.0  # ... the first delay, doubled per further failure ...
    login_max_delay_s: float = 60.0  # ... up to this
    login_window_s: float = 900.0  # failures older than this are forgotten
    login_client_attempts: int = 20  # failed logins per client address (any name) before delays
    login_workers: int = 1  # threads checking passwords (argon2), at low CPU priority
    login_queue: int = 4  # logins waiting for a check beyond that; more are told "busy"
