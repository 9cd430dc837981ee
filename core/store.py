"""The embedded SQLite store (WAL): probe results, daemon state, and room for other
modules' tables (the InfluxDB spool, alert state). One connection, used from one thread
at a time behind a lock; writes are small and batched by callers.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from core.result import ProbeResult

_T = TypeVar("_T")

_PUT_STATE = ("INSERT INTO kv(key, value, updated_at) VALUES (?,?,?) "
              "ON CONFLICT(key) DO UPDATE SET value=excluded.value, updated_at=excluded.updated_at")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    target TEXT NOT NULL,
    started_at_ns INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS results_target_time ON results(target, started_at_ns);
CREATE INDEX IF NOT EXISTS results_time ON results(started_at_ns);
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at REAL NOT NULL
);
"""


def _ns(r: ProbeResult) -> int:
    return int(r.started_at.timestamp() * 1_000_000) * 1000


class Store:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.executescript(_SCHEMA)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Exclusive use of the connection inside one transaction (for other modules' tables)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                # SQLITE_FULL (a full disk) has rolled back already: a second ROLLBACK would
                # raise "no transaction is active" and hide why
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            else:
                self._conn.execute("COMMIT")

    def execute(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    # -- probe results -------------------------------------------------------------
    def add_results(self, results: list[ProbeResult]) -> None:
        self.add_rows(self.result_rows(results))

    @staticmethod
    def result_rows(results: list[ProbeResult]) -> list[tuple[str, int, str, str]]:
        """The rows add_rows writes. Encoding is Python work: a caller that writes from a
        worker thread encodes on its own thread first, so that the worker holds the GIL
        only between SQLite calls (a CPU-bound worker makes the event loop wait up to a
        switch interval, 5 ms, after every socket call it makes)."""
        return [(r.target, _ns(r), r.outcome.value, json.dumps(r.to_record())) for r in results]

    def add_rows(self, rows: list[tuple[str, int, str, str]]) -> None:
        if not rows:
            return
        with self.transaction() as c:
            c.executemany(
                "INSERT INTO results(target, started_at_ns, outcome, record) VALUES (?,?,?,?)", rows
            )

    def results_since(self, since_unix: float, target: str | None = None) -> list[ProbeResult]:
        q = "SELECT record FROM results WHERE started_at_ns >= ?"
        params: list[Any] = [int(since_unix * 1e9)]
        if target is not None:
            q += " AND target = ?"
            params.append(target)
        q += " ORDER BY started_at_ns"
        return [ProbeResult.from_record(json.loads(row[0])) for row in self.execute(q, tuple(params))]

    def read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """A long read on its own connection (WAL: it neither waits for nor blocks the
        writers, and leaves the shared connection's lock free); :memory: uses the shared one."""
        if self.path == ":memory:":
            return self.execute(sql, params)
        conn = sqlite3.connect(self.path, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout=5000")
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """A connection for a long read (the status page's history queries): its own for a
        file (WAL: neither waits for nor blocks the writers), the shared one under the lock
        for :memory:."""
        if self.path == ":memory:":
            with self._lock:
                yield self._conn
            return
        conn = sqlite3.connect(self.path, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout=5000")
            yield conn
        finally:
            conn.close()

    def outcomes_since(self, since_unix: float, until_unix: float) -> list[tuple[str, float, bool]]:
        """(target, started_at unix, ok) of every stored probe in [since, until], oldest first.
        Reads the indexed columns only (no record is parsed)."""
        rows = self.read(
            "SELECT target, started_at_ns, outcome = 'ok' FROM results "
            "WHERE started_at_ns >= ? AND started_at_ns <= ? ORDER BY started_at_ns",
            (int(since_unix * 1e9), int(until_unix * 1e9)),
        )
        return [(t, ns / 1e9, bool(ok)) for t, ns, ok in rows]

    def outcome_buckets(self, since_unix: float, until_unix: float, bucket_seconds: float,
                        slow: Sequence[tuple[str, float, str]] = ()) -> list[tuple[str, float, int, int, list[int]]]:
        """Stored probes in [since, until] counted per target and time bucket, in SQL:
        (target, bucket start unix, probes, failed, [ok probes whose record `field` compares
        (`>=` or `<=`) to the threshold, one per (field, threshold, op) of `slow`]). json_extract reads only the
        fields asked for, so days of results restore without parsing a record in Python."""
        b_ns = int(bucket_seconds * 1e9)
        for _, _, op in slow:
            if op not in (">=", "<="):
                raise ValueError(f"comparison {op!r} is not >= or <=")
        cols = "".join(f", SUM(outcome = 'ok' AND json_extract(record, ?) {op} ?)" for _, _, op in slow)
        params: list[Any] = [b_ns]
        for field, threshold, _ in slow:
            params += ["$." + field, threshold]
        params += [int(since_unix * 1e9), int(until_unix * 1e9)]
        rows = self.read(
            f"SELECT target, started_at_ns / ? AS bucket, COUNT(*), SUM(outcome != 'ok'){cols} FROM results "
            "WHERE started_at_ns >= ? AND started_at_ns <= ? GROUP BY target, bucket ORDER BY bucket",
            tuple(params),
        )
        return [(r[0], r[1] * bucket_seconds, int(r[2]), int(r[3]), [int(x or 0) for x in r[4:]]) for r in rows]

    def prune(self, retention_seconds: float) -> int:
        cutoff = int((time.time() - retention_seconds) * 1e9)
        with self.transaction() as c:
            return c.execute("DELETE FROM results WHERE started_at_ns < ?", (cutoff,)).rowcount

    # -- daemon state (JSON values) -------------------------------------------------
    def get_state(self, key: str, default: Any = None) -> Any:
        rows = self.execute("SELECT value FROM kv WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else default

    def put_state(self, key: str, value: Any) -> None:
        with self.transaction() as c:
            c.execute(_PUT_STATE, (key, json.dumps(value), time.time()))

    def delete_states(self, keys: Sequence[str]) -> None:
        with self.transaction() as c:
            c.executemany("DELETE FROM kv WHERE key = ?", [(k,) for k in keys])

    def put_states_json(self, rows: list[tuple[str, str]]) -> None:
        """put_state of values already encoded as JSON text (key, text), in one transaction."""
        now = time.time()
        with self.transaction() as c:
            c.executemany(_PUT_STATE, [(key, text, now) for key, text in rows])

    def update_state(self, key: str, default: Any, change: Callable[[Any], tuple[Any, _T]]) -> _T:
        """Read, change and write one value in one write transaction: the CLI and the daemon
        both edit the silences, and a plain read-then-write lost one of two concurrent edits.
        `change(value)` returns (new value, result)."""
        with self.transaction() as c:
            rows = c.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchall()
            new, result = change(json.loads(rows[0][0]) if rows else default)
            c.execute(_PUT_STATE, (key, json.dumps(new), time.time()))
        return result

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def storage_problem(path: str | Path) -> str | None:
    """Why the daemon could not keep its store at `path` (None when it can), found without
    creating the database: `check` says so instead of `run` failing with a traceback.
    Writes are tried for real (a temporary file, a write lock): permission bits say nothing
    on a read-only mount or for root."""
    path = str(path)
    if path == ":memory:":
        return None
    p = Path(path)
    if p.is_dir():
        return f"{path} is a directory"
    if p.exists():
        try:
            conn = sqlite3.connect(f"{p.resolve().as_uri()}?mode=rw", uri=True, timeout=5)
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
            finally:
                conn.close()
        except sqlite3.Error as exc:
            return f"cannot write {path}: {exc}"
        where = p.parent
    else:
        where = p.parent
        while not where.exists() and where != where.parent:
            where = where.parent
        if not where.is_dir():
            return f"cannot create {path}: {where} is not a directory"
    try:
        # WAL keeps -wal and -shm files beside the database: the directory must take files
        tempfile.TemporaryFile(dir=where).close()
    except OSError as exc:
        return f"cannot create files in {where}: {exc.strerror}"
    return None
