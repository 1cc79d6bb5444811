"""Errors the catalog raises with messages meant for the person at the terminal."""


class CatalogError(Exception):
    """A catalog problem explained in one line (missing, locked, not DuckDB, too new)."""


class CatalogLockedError(CatalogError):
    """Another process held the write lock for longer than the configured wait."""
