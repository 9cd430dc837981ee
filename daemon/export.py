"""`llm-vitals export`: every stored probe, one CSV row or JSON line per probe, with exactly
the fields and names of `probe --format json` (probes.result.JSON_FIELDS).

Streams: the SQLite cursor is read in chunks and each row written before the next chunk is
read, so memory stays flat whatever the size of the store.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

from daemon.history import ns, target_clause
from probes.result import JSON_FIELDS, ProbeResult

CHUNK = 1000
FORMATS = ("csv", "jsonl")


def probe_dicts(conn: sqlite3.Connection, since: float, until: float, targets: Sequence[str] | None = None
                ) -> Iterator[dict[str, Any]]:
    """Each stored probe in [since, until] as its `probe --format json` object, oldest first."""
    clause, extra = target_clause(targets)
    cur = conn.execute(
        f"SELECT record FROM results WHERE started_at_ns >= ? AND started_at_ns <= ?{clause} "
        "ORDER BY started_at_ns, id", [ns(since), ns(until), *extra])
    while True:
        rows = cur.fetchmany(CHUNK)
        if not rows:
            return
        for (record,) in rows:
            yield ProbeResult.from_record(json.loads(record)).to_json_dict()


def _csv_value(v: Any) -> Any:
    # None is an empty cell; a float keeps every digit (repr), as in the JSON
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return v


def write(rows: Iterator[dict[str, Any]], fmt: str, out: TextIO) -> int:
    """Write every row; returns how many."""
    n = 0
    if fmt == "jsonl":
        for d in rows:
            out.write(json.dumps(d) + "\n")
            n += 1
    elif fmt == "csv":
        w = csv.writer(out, lineterminator="\n")
        w.writerow(JSON_FIELDS)
        for d in rows:
            w.writerow([_csv_value(d[f]) for f in JSON_FIELDS])
            n += 1
    else:
        raise ValueError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
    return n
