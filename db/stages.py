"""Pipeline stage names in funnel order (unlisted ones sort after these, by name), and which
images take part in stages at all."""

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


def live_only(con, column: str = "image_id") -> str:
    """`AND <column> NOT IN (orphans)` when some image has lost its path, else "" (the usual
    catalog has none, and then no row pays for the filter). An orphan is content no path holds
    any more (its file was rewritten with other bytes): it takes part in no stage and no count.
    Ingest's merge keeps the `orphan_images` table."""
    orphans = con.execute("SELECT EXISTS (SELECT 1 FROM orphan_images)").fetchall()[0][0]
    return f"AND {column} NOT IN (SELECT image_id FROM orphan_images) " if orphans else ""
