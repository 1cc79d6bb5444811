"""The [review] config section: queue and leases, voting rules, previews, sessions and logins."""

from __future__ import annotations

from dataclasses import dataclass

from hfaid_core.settings.ranges import ranged


@dataclass
class ReviewConfig:
    stage_input: str = (
        "review_queue"  # images that passed this stage form the queue ("ingest": all)
    )
    lease_s: float = ranged(300.0, 1)  # how long a claimed image stays reserved for its reviewer
    # images leased and loaded into the browser beyond the one shown
    prefetch_ahead: int = ranged(3, 0, 32)
    undo_window_s: float = ranged(300.0, 0)  # how long a reviewer may take back or change a vote
    # a vote key or click this soon after a new image is ignored
    repeat_guard_ms: int = ranged(400, 0)
    reject_needs_reason: bool = True  # a reject must name at least one reason
    # distinct reviewers unsure about an image send it to an admin
    skips_to_admin: int = ranged(2, 1)
    # how often the server looks for new images in the input stage
    queue_sync_s: float = ranged(60.0, 1)
    show_scores: bool = False  # blind by default: scores could anchor the reviewer
    preview_max_side: int = ranged(1280, 16)  # longest side of the fit-view JPEG (never enlarged)
    crop_size: int = ranged(320, 16)  # side of each 1:1 crop for pixel-peeping
    crops: int = ranged(3, 0)  # 1:1 crops shown per image (centre + the most detailed regions)
    # JPEG quality of previews and crops (4:4:4, no chroma halving)
    preview_quality: int = ranged(90, 1, 100)
    # in-process cache of prepared previews (disk cache is unbounded)
    memory_cache_mb: int = ranged(128, 0)
    # a login lasts this long (reload and new tabs keep it)
    session_hours: float = ranged(12.0, 0.01)
    # failed logins per (name, client address) before delays start ...
    login_attempts: int = ranged(5, 1)
    login_delay_s: float = ranged(1.0, 0)  # ... the first delay, doubled per further failure ...
    login_max_delay_s: float = ranged(60.0, 0)  # ... up to this
    login_window_s: float = ranged(900.0, 0)  # failures older than this are forgotten
    # failed logins per client address (any name) before delays
    login_client_attempts: int = ranged(20, 1)
    login_workers: int = ranged(1, 1)  # threads checking passwords (argon2), at low CPU priority
    login_queue: int = ranged(4, 0)  # logins waiting for a check beyond that; more are told "busy"
