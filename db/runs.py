"""The runs table: one row per command invocation with its config, versions, counts and process."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from db.catalog import Catalog

# (pid, started, host) -> whether that process still runs; the caller knows how to tell.
AliveCheck = Callable[[int, float, str], bool]


def start_run(
    catalog: Catalog,
    command: str,
    config: dict[str, Any],
    versions: dict[str, str],
    owner: tuple[int, float, str] | None = None,
) -> int:
    """Record a starting run (and the process running it: pid, start time, host); its id."""
    pid, started, host = owner or (None, None, None)
    with catalog.connect() as con:
        return con.execute(
            "INSERT INTO runs (command, config, versions, pid, pid_started, host) "
            "VALUES (?, ?, ?, ?, ?, ?) RETURNING run_id",
            [command, json.dumps(config, default=str), json.dumps(versions), pid, started, host],
        ).fetchone()[0]


def finish_run(catalog: Catalog, run_id: int, status: str, counts: dict[str, Any]) -> None:
    """Close a run with its final status (done | failed | interrupted) and counts."""
    with catalog.connect() as con:
        con.execute(
            "UPDATE runs SET ended_at = now(), status = ?, counts = ? WHERE run_id = ?",
            [status, json.dumps(counts, default=str), run_id],
        )


def list_runs(catalog: Catalog, limit: int = 50, alive: AliveCheck | None = None
              ) -> list[dict[str, Any]]:
    """Recent runs, newest first; a `running` one whose process is gone shows `interrupted`."""
    rows = _dicts(
        catalog,
        "SELECT run_id, command, status, started_at, ended_at, counts, pid, pid_started, host "
        "FROM runs ORDER BY run_id DESC LIMIT ?",
        [limit],
    )
    for row in rows:
        if alive is not None and _gone(row, alive):
            row["status"] = "interrupted"
        del row["pid_started"], row["host"]
    return rows


def interrupted_runs(catalog: Catalog, command: str, alive: AliveCheck) -> list[dict[str, Any]]:
    """Runs of `command` still marked running whose process is gone (killed), oldest first."""
    rows = _dicts(
        catalog,
        "SELECT run_id, started_at, pid, pid_started, host FROM runs "
        "WHERE command = ? AND status = 'running' AND pid IS NOT NULL ORDER BY run_id",
        [command],
    )
    return [row for row in rows if _gone(row, alive)]


def _dicts(catalog: Catalog, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    with catalog.connect(read_only=True) as con:
        cur = con.execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def finished_runs(catalog: Catalog, commands: tuple[str, ...]) -> list[dict[str, Any]]:
    """Runs of `commands` that ended "done", oldest first, with config and counts parsed."""
    rows = _dicts(
        catalog,
        "SELECT run_id, command, config, counts FROM runs WHERE status = 'done' "
        "AND list_contains(?::VARCHAR[], command) ORDER BY run_id",
        [list(commands)],
    )
    for row in rows:
        row["config"] = json.loads(row["config"] or "{}")
        row["counts"] = json.loads(row["counts"] or "{}")
    return rows


def mark_interrupted(catalog: Catalog, run_ids: list[int]) -> None:
    """Record runs whose process died as interrupted (ended_at stays unknown)."""
    with catalog.connect() as con:
        con.execute(
            "UPDATE runs SET status = 'interrupted' WHERE status = 'running' "
            "AND run_id IN (SELECT unnest(?))",
            [run_ids],
        )


def _gone(row: dict[str, Any], alive: AliveCheck) -> bool:
    return (
        row.get("status", "running") == "running"
        and row["pid"] is not None
        and not alive(row["pid"], row["pid_started"], row["host"])
    )
