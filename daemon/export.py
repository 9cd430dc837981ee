"""`llm-vitals export`: every stored probe, one CSV row or JSON line per probe, with exactly
the fields and names of `probe --format json` (core.result.JSON_FIELDS).

Streams: the SQLite cursor is read in chunks and each row written before the next chunk is
read, so memory stays flat whatever the size of the store.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import sqlite3
from collections.abc import Iterator, Sequence
from enum import StrEnum
from typing import Any, TextIO

from core.result import JSON_FIELDS, ProbeResult
from daemon.history import ns, target_clause

CHUNK = 1000
_PATHS = ", ".join(f"'$.{f}'" for f in JSON_FIELDS)
# what ProbeResult.from_record() fills in for a field an older record lacks (None otherwise)
_DEFAULTS = {f.name: f.default.value for f in dataclasses.fields(ProbeResult)
             if f.name in JSON_FIELDS and isinstance(f.default, StrEnum)}
FORMATS = ("csv", "jsonl")


def probe_dicts(conn: sqlite3.Connection, since: float, until: float, targets: Sequence[str] | None = None
                ) -> Iterator[dict[str, Any]]:
    """Each stored probe in [since, until] as its `probe --format json` object, oldest first."""
    clause, extra = target_clause(targets)
    # The stored record holds every field of ProbeResult.to_record(), which writes the
    # JSON_FIELDS as to_json_dict() does (started_at in RFC 3339, enums as their values): the
    # fields are taken straight from it, in SQL (a record holds much more, e.g. every gap
    # between tokens), three times faster than rebuilding each ProbeResult.
    cur = conn.execute(
        f"SELECT json_extract(record, {_PATHS}) FROM results WHERE started_at_ns >= ? AND started_at_ns <= ?{clause} "
        "ORDER BY started_at_ns, id", [ns(since), ns(until), *extra])
    while True:
        rows = cur.fetchmany(CHUNK)
        if not rows:
            return
        for (values,) in rows:
            d = dict(zip(JSON_FIELDS, json.loads(values), strict=True))
            for name, default in _DEFAULTS.items():
                if d[name] is None:
                    d[name] = default
            yield d


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
