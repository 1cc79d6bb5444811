"""What `hfaid review` hands the Streamlit server: environment names and the queue's stage."""

from __future__ import annotations

# `hfaid review` passes these to the Streamlit server process.
ENV_CATALOG, ENV_CONFIG = "HFAID_CATALOG", "HFAID_CONFIG"
ENV_STAGE, ENV_RUN = "HFAID_REVIEW_STAGE_INPUT", "HFAID_REVIEW_RUN_ID"


def queue_stage(name: str) -> str | None:
    """A --stage-input value as db/review.py wants it ("ingest"/"all" mean every image)."""
    return None if name in ("ingest", "all", "") else name
