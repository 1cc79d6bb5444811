"""hfaid curation pipeline: ingest, checks, dedup, scorers, runner, select, degrade, export."""

__version__ = "0.1.0"
