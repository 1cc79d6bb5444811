"""Stage names in funnel order, the one meaning of a `--stage-input` name everywhere, and
which images take part in stages at all."""

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

# Names that mean "every ingested image": `ingest` passes every image it could read (what
# `hfaid funnel` counts as passed), so it selects the same images as `all`.
EVERY_IMAGE = ("ingest", "all", "")
# Words people use for a stage: reviewers "accept" an image when it passes stage `review`.
STAGE_ALIASES = {"accepted": "review"}


class UnknownStageError(ValueError):
    """A --stage-input name that is no funnel stage (the message lists the accepted names)."""


def stage_rank(stage: str) -> tuple[int, str]:
    """Sort key that puts known stages in pipeline order and unknown ones last."""
    try:
        return (STAGE_ORDER.index(stage), stage)
    except ValueError:
        return (len(STAGE_ORDER), stage)


def stage_input_names() -> tuple[str, ...]:
    """Every name a `--stage-input` option accepts."""
    return (*STAGE_ORDER, "all", *STAGE_ALIASES)


def resolve_stage_input(name: str) -> str | None:
    """The stage whose passed images a command reads; None = every ingested image."""
    name = STAGE_ALIASES.get(name, name)
    if name in EVERY_IMAGE:
        return None
    if name not in STAGE_ORDER:
        raise UnknownStageError(
            f"--stage-input {name!r} is not a stage of the funnel; use one of: "
            + ", ".join(stage_input_names())
        )
    return name
def live_only(con, column: str = "image_id") -> str:
    """`AND <column> NOT IN (orphans)` when some image has lost its path, else "" (the usual
    catalog has none, and then no row pays for the filter). An orphan is content no path holds
    any more (its file was rewritten with other bytes): it takes part in no stage and no count.
    Ingest's merge keeps the `orphan_images` table."""
    orphans = con.execute("SELECT EXISTS (SELECT 1 FROM orphan_images)").fetchall()[0][0]
    return f"AND {column} NOT IN (SELECT image_id FROM orphan_images) " if orphans else ""
