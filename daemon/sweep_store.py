"""Scheduled sweeps' results in the store: one row per run (done, partial, refused, ...),
its report (levels, saturation) as JSON. The table is created where it is used, as the
other rooms' tables are (CREATE ... IF NOT EXISTS): an older store gains it on start.

Readers take a plain connection (the status page's reading connection, `report`'s
read-only one); a store the daemon never ran sweeps in has no table, and reads as empty.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from core.store import Store

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sweeps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    target TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL NOT NULL,
    outcome TEXT NOT NULL,
    report TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sweeps_name_time ON sweeps(name, started_at);
CREATE INDEX IF NOT EXISTS sweeps_time ON sweeps(started_at);
"""


@dataclass(frozen=True)
class SweepRun:
    name: str
    target: str
    started_at: float  # unix seconds
    finished_at: float
    outcome: str  # ok · partial · failed · cancelled · refused
    report: dict[str, Any]  # daemon.sweep.report()'s shape, plus "reason" for a refusal

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "target": self.target, "started_at": self.started_at,
                "finished_at": self.finished_at, "outcome": self.outcome, **self.report}


class SweepStore:
    def __init__(self, store: Store) -> None:
        self._store = store
        with store.transaction() as c:
            for stmt in filter(str.strip, _SCHEMA.split(";")):
                c.execute(stmt)

    def add(self, run: SweepRun) -> None:
        with self._store.transaction() as c:
            c.execute("INSERT INTO sweeps(name, target, started_at, finished_at, outcome, report) "
                      "VALUES (?,?,?,?,?,?)",
                      (run.name, run.target, run.started_at, run.finished_at, run.outcome, json.dumps(run.report)))

    def prune(self, retention_seconds: float) -> int:
        with self._store.transaction() as c:
            return c.execute("DELETE FROM sweeps WHERE started_at < ?", (time.time() - retention_seconds,)).rowcount


def runs(conn: sqlite3.Connection, since: float, until: float, name: str | None = None,
         limit: int = 1000) -> list[SweepRun]:
    """Runs started in [since, until], newest first."""
    q = "SELECT name, target, started_at, finished_at, outcome, report FROM sweeps WHERE started_at >= ? " \
        "AND started_at <= ?"
    params: list[Any] = [since, until]
    if name is not None:
        q += " AND name = ?"
        params.append(name)
    q += " ORDER BY started_at DESC LIMIT ?"
    params.append(limit)
    try:
        rows = conn.execute(q, tuple(params)).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    return [SweepRun(n, t, s, f, o, json.loads(r)) for n, t, s, f, o, r in rows]


def latest(conn: sqlite3.Connection, names: list[str]) -> dict[str, SweepRun]:
    """Each named sweep's newest run."""
    out: dict[str, SweepRun] = {}
    for name in names:
        found = runs(conn, 0.0, float("inf"), name, limit=1)
        if found:
            out[name] = found[0]
    return out
