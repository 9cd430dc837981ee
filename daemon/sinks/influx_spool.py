"""The durable spool: line-protocol points in the embedded SQLite store, oldest first.

Every point is written here before it is sent and deleted only once the database has
acknowledged it, so a crash, an outage or a restart loses nothing. Bounded: when full,
the oldest points go (counted)."""

from __future__ import annotations

from core.store import Store

_SCHEMA = "CREATE TABLE IF NOT EXISTS influx_spool (id INTEGER PRIMARY KEY AUTOINCREMENT, sink TEXT NOT NULL, line TEXT NOT NULL)"


class Spool:
    def __init__(self, store: Store, name: str, max_points: int) -> None:
        self._store = store
        self._name = name
        self._max = max_points
        with store.transaction() as c:
            c.execute(_SCHEMA)
            c.execute("CREATE INDEX IF NOT EXISTS influx_spool_sink ON influx_spool(sink, id)")

    def append(self, lines: list[str]) -> int:
        """Add lines; returns how many old ones were dropped to stay within the bound."""
        with self._store.transaction() as c:
            c.executemany("INSERT INTO influx_spool(sink, line) VALUES (?, ?)", [(self._name, ln) for ln in lines])
            (size,) = c.execute("SELECT COUNT(*) FROM influx_spool WHERE sink = ?", (self._name,)).fetchone()
            over = size - self._max
            if over > 0:
                c.execute("DELETE FROM influx_spool WHERE id IN (SELECT id FROM influx_spool WHERE sink = ? "
                          "ORDER BY id LIMIT ?)", (self._name, over))
                return int(over)
        return 0

    def oldest(self, limit: int) -> list[tuple[int, str]]:
        return [(int(i), str(line)) for i, line in self._store.execute(
            "SELECT id, line FROM influx_spool WHERE sink = ? ORDER BY id LIMIT ?", (self._name, limit))]

    def delete_through(self, last_id: int) -> None:
        with self._store.transaction() as c:
            c.execute("DELETE FROM influx_spool WHERE sink = ? AND id <= ?", (self._name, last_id))

    def size(self) -> int:
        return int(self._store.execute("SELECT COUNT(*) FROM influx_spool WHERE sink = ?", (self._name,))[0][0])
