"""Stage names in funnel order, and the one meaning of a `--stage-input` name everywhere."""

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
