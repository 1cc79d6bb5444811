"""User-facing errors: raised for bad input, printed as one line by the CLI."""


class HfaidError(Exception):
    """A problem with the user's input or environment, explained in one line."""
