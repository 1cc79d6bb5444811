"""The runs table: one row per command invocation with its config, versions and counts."""

from __future__ import annotations

import json
from typing import Any

from db.catalog import Catalog


def start_run(
    catalog: Catalog, command: str, config: dict[str, Any], versions: dict[str, str]
) -> int:
    """Record a starting run and return its id."""
    with catalog.connect() as con:
        return con.execute(
            "INSERT INTO runs (command, config, versions) VALUES (?, ?, ?) RETURNING run_id",
            [command, json.dumps(config, default=str), json.dumps(versions)],
        ).fetchone()[0]


def finish_run(catalog: Catalog, run_id: int, status: str, counts: dict[str, Any]) -> None:
    """Close a run with its final status (done | failed | interrupted) and counts."""
    with catalog.connect() as con:
        con.execute(
            "UPDATE runs SET ended_at = now(), status = ?, counts = ? WHERE run_id = ?",
            [status, json.dumps(counts, default=str), run_id],
        )


def list_runs(catalog: Catalog, limit: int = 50) -> list[dict[str, Any]]:
    with catalog.connect(read_only=True) as con:
        cur = con.execute(
            "SELECT run_id, command, status, started_at, ended_at, counts FROM runs "
            "ORDER BY run_id DESC LIMIT ?",
            [limit],
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def finished_runs(catalog: Catalog, commands: tuple[str, ...]) -> list[dict[str, Any]]:
    """Runs of `commands` that ended "done", oldest first, with config and counts parsed."""
    with catalog.connect(read_only=True) as con:
        rows = con.execute(
            "SELECT run_id, command, config, counts FROM runs WHERE status = 'done' "
            "AND list_contains(?::VARCHAR[], command) ORDER BY run_id",
            [list(commands)],
        ).fetchall()
    return [{"run_id": r, "command": c, "config": json.loads(cfg or "{}"),
             "counts": json.loads(counts or "{}")} for r, c, cfg, counts in rows]
