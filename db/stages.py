"""Pipeline stage names in funnel order; stages not listed sort after these, by name."""

STAGE_ORDER: tuple[str, ...] = (
    "ingest",
    "clean",
    "dedup",
    "score",
    "quality",
    "aesthetic",
    "review_queue",
    "review",
    "caption",
    "export",
)


def stage_rank(stage: str) -> tuple[int, str]:
    """Sort key that puts known stages in pipeline order and unknown ones last."""
    try:
        return (STAGE_ORDER.index(stage), stage)
    except ValueError:
        return (len(STAGE_ORDER), stage)
