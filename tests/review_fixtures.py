"""Shared by the review tests and benchmark: a catalog with real photos and reviewer accounts."""

from __future__ import annotations

from pathlib import Path

from db.accounts import add_reviewer
from db.catalog import Catalog
from tests.conftest import write_photo_pool

PASSWORD = "correct horse battery"


def build_review_catalog(folder: Path, images: int, reviewers: list[str],
                         admins: list[str], size: tuple[int, int] = (320, 240)) -> Catalog:
    """Ingest `images` real photos into folder/catalog.duckdb and create the accounts.

    Extra accounts copy the first one's argon2 hash (same password): hashing is slow on purpose.
    """
    from hfaid.cli import main

    write_photo_pool(folder / "pool", images, size=size)
    cat = Catalog(folder / "catalog.duckdb", lock_timeout_s=30)
    code = main(["ingest", str(folder / "pool"), "--workers", "1", "--catalog", str(cat.path)])
    if code != 0:
        raise RuntimeError(f"ingest failed with exit {code}")
    names = [(n, "reviewer") for n in reviewers] + [(n, "admin") for n in admins]
    add_reviewer(cat, names[0][0], names[0][1], PASSWORD)
    with cat.connect() as con:
        for name, role in names[1:]:
            con.execute(
                "INSERT INTO reviewers (name, role, password_hash) "
                "SELECT ?, ?, password_hash FROM reviewers WHERE name = ?",
                [name, role, names[0][0]],
            )
    return cat
