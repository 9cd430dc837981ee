"""Read-only queries over the stored probe history: what the status page draws, `report`
summarises and `export` streams.

Plain functions over one sqlite3 connection, run off the event loop by their callers.
Every answer is bounded whatever the range: per-probe series are downsampled to at most
`max_points` rows (failed probes are kept one by one; ok probes are merged into time
buckets), quantile series come per bucket, and each query reads only the JSON fields it
needs (one `json_extract` per row).
"""

from __future__ import annotations

import json
import math
import sqlite3
import statistics
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

# numpy (15 MB of RSS) is imported by the functions that use it: the daemon imports this
# module for its status page, and a daemon nobody opens the page of never needs numpy

MAX_POINTS = 4000
MAX_BUCKETS = 1000
PROBE_FIELDS: tuple[str, ...] = ("connect", "tls", "ttfb", "ttft", "e2e", "output_tps")
QUANTILE_FIELDS = frozenset({"ttft", "ttft_content", "e2e", "ttfb", "tpot", "itl_p95", "output_tps"})
Price = Callable[[str], tuple[float, float] | None]  # target → (input, output) USD per Mtok


class HistoryError(ValueError):
    """The store cannot be read (missing file, not an llm-vitals store)."""


@contextmanager
def open_readonly(path: str | Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to a store file: a report or export must never create an empty
    database where a mistyped path points, nor take a write lock from the running daemon."""
    p = Path(path)
    if not p.is_file():
        raise HistoryError(f"no probe store at {p} (storage.path of the config; has the daemon run yet?)")
    conn = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
    try:
        conn.execute("PRAGMA busy_timeout=5000")
        try:
            conn.execute("SELECT 1 FROM results LIMIT 1").fetchall()
        except sqlite3.DatabaseError as exc:
            raise HistoryError(f"{p}: not an llm-vitals store ({exc})") from None
        yield conn
    finally:
        conn.close()


def ns(t: float) -> int:
    return int(t * 1e9)


def target_clause(targets: Sequence[str] | None) -> tuple[str, list[Any]]:
    """`provider/model` selects every probe of the model, `provider/model/probe` one target.
    Prefixes are compared with substr (names may hold `_`, a LIKE wildcard)."""
    if not targets:
        return "", []
    parts: list[str] = []
    params: list[Any] = []
    for t in targets:
        if t.count("/") >= 2:
            parts.append("target = ?")
            params.append(t)
        else:
            prefix = t.rstrip("/") + "/"
            parts.append("substr(target, 1, ?) = ?")
            params += [len(prefix), prefix]
    return " AND (" + " OR ".join(parts) + ")", params


def targets_stored(conn: sqlite3.Connection, since: float, until: float) -> list[str]:
    rows = conn.execute(
        "SELECT DISTINCT target FROM results WHERE started_at_ns >= ? AND started_at_ns <= ?",
        (ns(since), ns(until))).fetchall()
    return sorted(r[0] for r in rows)


# -- availability -------------------------------------------------------------------
HOUR = 3600.0


def counts(conn: sqlite3.Connection, since: float, until: float, per_hour: bool = False
           ) -> dict[tuple[str, int], tuple[int, int]]:
    """(probes, ok) per (target, hour index) in [since, until), or per (target, 0) when not
    per_hour. Indexed columns only."""
    hour = "started_at_ns / ?" if per_hour else "0"
    params: list[Any] = [int(HOUR * 1e9)] if per_hour else []
    rows = conn.execute(
        f"SELECT target, {hour} AS h, COUNT(*), SUM(outcome = 'ok') FROM results "
        "WHERE started_at_ns >= ? AND started_at_ns < ? GROUP BY target, h",
        [*params, ns(since), ns(until)]).fetchall()
    return {(t, int(h)): (int(n), int(ok or 0)) for t, h, n, ok in rows}


class Availability:
    """Availability over windows ending now, cheap enough to ask every few seconds at 1,000
    targets x 7 days: whole hours are counted once an hour and kept; each call counts only
    the current hour and the partial hour at each window's start."""

    def __init__(self, windows: dict[str, float]) -> None:
        self.windows = windows
        self._lock = threading.Lock()
        self._hour: int | None = None
        self._hours: dict[tuple[str, int], tuple[int, int]] = {}

    def __call__(self, conn: sqlite3.Connection, now: float) -> dict[str, dict[str, Any]]:
        with self._lock:
            h = math.floor(now / HOUR)
            if self._hour != h:
                oldest = h - math.ceil(max(self.windows.values()) / HOUR) - 1
                self._hours = counts(conn, oldest * HOUR, h * HOUR, per_hour=True)
                self._hour = h
            current = counts(conn, h * HOUR, now + 1.0)
            out: dict[str, dict[str, Any]] = {}
            for name, length in self.windows.items():
                start = now - length
                first_full = math.ceil(start / HOUR)
                tally: dict[str, list[int]] = {}
                parts = [((t, 0), v) for (t, _), v in counts(conn, start, first_full * HOUR).items()]
                parts += [((t, hh), v) for (t, hh), v in self._hours.items() if first_full <= hh < h]
                parts += list(current.items())
                for (t, _), (n, ok) in parts:
                    c = tally.setdefault(t, [0, 0])
                    c[0] += n
                    c[1] += ok
                for t, (n, ok) in tally.items():
                    out.setdefault(t, {})[name] = {"probes": n, "ok": ok, "ratio": ok / n if n else None}
            for per in out.values():
                for name in self.windows:
                    per.setdefault(name, {"probes": 0, "ok": 0, "ratio": None})
            return out


# -- quantiles per time bucket --------------------------------------------------------
def bucket_for(span: float, wanted: float) -> float:
    """`wanted` seconds, widened so a range never has more than MAX_BUCKETS buckets."""
    return max(wanted, math.ceil(span / MAX_BUCKETS), 1.0)


Buckets = dict[int, dict[str, list[Any]]]  # absolute bucket index → target → [quantiles..., n]


def _check_field(field: str) -> None:
    if field not in QUANTILE_FIELDS:
        raise ValueError(f"metric {field!r}: expected one of {', '.join(sorted(QUANTILE_FIELDS))}")


def _read_buckets(conn: sqlite3.Connection, field: str, first_i: int, until: float, bucket: float,
                  targets: Sequence[str] | None, qs: Sequence[float]) -> Buckets:
    """Quantiles of `field` (ok probes) per bucket and target, buckets first_i.. up to until.
    Buckets are aligned on multiples of `bucket` since the epoch, so they can be cached."""
    import numpy as np

    clause, extra = target_clause(targets)
    rows = conn.execute(
        "SELECT target, started_at_ns, json_extract(record, ?) FROM results "
        f"WHERE started_at_ns >= ? AND started_at_ns <= ? AND outcome = 'ok'{clause}",
        ["$." + field, ns(first_i * bucket), ns(until), *extra])
    values: dict[int, dict[str, list[float]]] = {}
    for target, at_ns, v in rows:
        if v is not None:
            values.setdefault(math.floor(at_ns / 1e9 / bucket), {}).setdefault(target, []).append(float(v))
    out: Buckets = {}
    for i, per in values.items():
        for target, vs in per.items():
            got = np.percentile(np.asarray(vs), [q * 100 for q in qs])
            out.setdefault(i, {})[target] = [*(round(float(x), 6) for x in got), len(vs)]
    return out


def _series(field: str, buckets: Buckets, first_i: int, last_i: int, bucket: float, qs: Sequence[float],
            targets: Sequence[str] | None) -> dict[str, Any]:
    n = last_i - first_i + 1
    keys = select_targets(sorted({t for i in range(first_i, last_i + 1) for t in buckets.get(i, {})}), targets)
    series: dict[str, dict[str, list[Any]]] = {}
    for target in keys:
        cols: dict[str, list[Any]] = {_qname(q): [None] * n for q in qs}
        cols["n"] = [0] * n
        for j in range(n):
            got = buckets.get(first_i + j, {}).get(target)
            if got is not None:
                for q, v in zip(qs, got, strict=False):
                    cols[_qname(q)][j] = v
                cols["n"][j] = got[-1]
        series[target] = cols
    return {"metric": field, "bucket_seconds": bucket,
            "t": [(first_i + j) * bucket for j in range(n)], "series": series}


def quantile_series(conn: sqlite3.Connection, field: str, since: float, until: float, bucket: float,
                    targets: Sequence[str] | None = None, qs: Sequence[float] = (0.5, 0.95)
                    ) -> dict[str, Any]:
    """The quantiles of one field of the ok probes per bucket, per target, on one shared
    time axis (bucket starts; a bucket without probes is null, so the lines break)."""
    _check_field(field)
    bucket = bucket_for(until - since, bucket)
    first_i, last_i = math.floor(since / bucket), math.floor(until / bucket)
    return _series(field, _read_buckets(conn, field, first_i, until, bucket, targets, qs),
                   first_i, last_i, bucket, qs, targets)


class QuantileCache:
    """quantile_series for every target (the overview's sparklines), reading only what is
    new: a bucket is kept once it has settled (ended SETTLE seconds ago: a probe is stored
    when it ends, up to its timeout after its start), so each call reads the last bucket or
    two instead of a day of probes."""

    SETTLE = 120.0

    def __init__(self, field: str, qs: Sequence[float] = (0.5, 0.95)) -> None:
        _check_field(field)
        self.field = field
        self.qs = tuple(qs)
        self._lock = threading.Lock()
        self._done: dict[float, Buckets] = {}  # bucket width → settled buckets

    def __call__(self, conn: sqlite3.Connection, since: float, until: float, bucket: float,
                 targets: Sequence[str] | None = None) -> dict[str, Any]:
        bucket = bucket_for(until - since, bucket)
        first_i, last_i = math.floor(since / bucket), math.floor(until / bucket)
        with self._lock:
            done = self._done.setdefault(bucket, {})
            for i in [i for i in done if i < first_i]:
                del done[i]
            missing = [i for i in range(first_i, last_i + 1) if i not in done]
            fresh = _read_buckets(conn, self.field, missing[0], until, bucket, None, self.qs) if missing else {}
            settled = math.floor((until - self.SETTLE) / bucket)  # buckets before this one have ended long enough ago
            for i in missing:
                if i < settled:
                    done[i] = fresh.get(i, {})
            merged = {**done, **{i: v for i, v in fresh.items() if i not in done}}
            return _series(self.field, merged, first_i, last_i, bucket, self.qs, targets)


def _qname(q: float) -> str:
    return f"p{q * 100:g}"


# -- every probe of one target ----------------------------------------------------------
def probes(conn: sqlite3.Connection, target: str, since: float, until: float,
           max_points: int = MAX_POINTS) -> dict[str, Any]:
    """Column arrays of one target's probes (t, outcome, n, PROBE_FIELDS), oldest first. Over
    `max_points`, ok probes are merged per time bucket (median of each field, `n` probes)
    while every failed probe stays a point of its own (the newest `max_points // 2`); the
    rows are then streamed, one bucket in memory at a time."""
    where = "WHERE target = ? AND started_at_ns >= ? AND started_at_ns <= ?"
    params = (target, ns(since), ns(until))
    count = int(conn.execute(f"SELECT COUNT(*) FROM results {where}", params).fetchone()[0])
    paths = ", ".join("'$." + f + "'" for f in PROBE_FIELDS)
    rows = conn.execute(f"SELECT started_at_ns, outcome, json_extract(record, {paths}) FROM results {where} "
                        "ORDER BY started_at_ns", params)
    bucket: float | None = None
    if count <= max_points:
        points = [(at_ns / 1e9, outcome, json.loads(vals), 1) for at_ns, outcome, vals in rows]
    else:
        bucket = max(1.0, math.ceil((until - since) / (max_points // 2)))
        points = _downsample(rows, since, bucket, max_points // 2)
    cols: dict[str, list[Any]] = {"t": [], "outcome": [], "n": [], **{f: [] for f in PROBE_FIELDS}}
    for t, outcome, vals, n in points:
        cols["t"].append(round(t, 3))
        cols["outcome"].append(outcome)
        cols["n"].append(n)
        for f, v in zip(PROBE_FIELDS, vals, strict=True):
            cols[f].append(None if v is None else round(float(v), 6))
    return {"target": target, "since": since, "until": until, "count": count,
            "downsampled_bucket_seconds": bucket, "probes": cols}


Point = tuple[float, str, list[Any], int]  # t, outcome, PROBE_FIELDS values, probes merged


def _downsample(rows: Iterable[tuple[int, str, str]], since: float, bucket: float, max_failed: int
                ) -> list[Point]:
    failed: deque[Point] = deque(maxlen=max_failed)
    merged: list[Point] = []
    current: int | None = None
    acc: list[list[Any]] = []

    def flush() -> None:
        if acc and current is not None:
            merged.append((since + (current + 0.5) * bucket, "ok", [_median(c) for c in zip(*acc, strict=True)],
                           len(acc)))

    for at_ns, outcome, vals in rows:
        t = at_ns / 1e9
        if outcome != "ok":
            failed.append((t, outcome, json.loads(vals), 1))
            continue
        i = int((t - since) // bucket)
        if i != current:
            flush()
            current, acc = i, []
        acc.append(json.loads(vals))
    flush()
    return sorted([*merged, *failed], key=lambda p: p[0])


def _median(values: Sequence[float | None]) -> float | None:
    vs = [v for v in values if v is not None]
    return float(statistics.median(vs)) if vs else None


def errors(conn: sqlite3.Connection, target: str | None, since: float, until: float, limit: int = 50
           ) -> list[dict[str, Any]]:
    """The newest failed probes with their messages (errors are secret-free by contract)."""
    clause, extra = target_clause([target] if target else None)
    rows = conn.execute(
        "SELECT target, started_at_ns, outcome, json_extract(record, '$.status_code', '$.error', '$.request_id') "
        f"FROM results WHERE started_at_ns >= ? AND started_at_ns <= ? AND outcome != 'ok'{clause} "
        "ORDER BY started_at_ns DESC LIMIT ?", [ns(since), ns(until), *extra, limit]).fetchall()
    out = []
    for tgt, at_ns, outcome, vals in rows:
        code, err, rid = json.loads(vals)
        out.append({"target": tgt, "t": at_ns / 1e9, "outcome": outcome, "status_code": code, "error": err,
                    "request_id": rid})
    return out


# -- per-target summary (report, comparison view) ---------------------------------------
@dataclass
class Summary:
    target: str
    probes: int
    ok: int
    errors: dict[str, int]
    ttft: dict[str, float | None]
    e2e: dict[str, float | None]
    output_tps: dict[str, float | None]
    cost_usd: float | None
    first: float | None
    last: float | None

    @property
    def availability(self) -> float | None:
        return self.ok / self.probes if self.probes else None

    @property
    def cost_per_1k(self) -> float | None:
        return None if self.cost_usd is None or not self.probes else self.cost_usd / self.probes * 1000

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "probes": self.probes, "ok": self.ok, "availability": self.availability,
                "errors": self.errors, "ttft": self.ttft, "e2e": self.e2e, "output_tps": self.output_tps,
                "cost_usd": self.cost_usd, "cost_per_1k_probes_usd": self.cost_per_1k,
                "first": self.first, "last": self.last}


_SUMMARY_PATHS = "'$.ttft', '$.e2e', '$.output_tps', '$.input_tokens', '$.output_tokens'"


@dataclass
class TargetRows:
    """One target's probes over a range, as numpy columns (NaN where a field is null)."""

    target: str
    t: np.ndarray
    ok: np.ndarray
    outcome: list[str]
    ttft: np.ndarray
    e2e: np.ndarray
    output_tps: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray


def target_rows(conn: sqlite3.Connection, target: str, since: float, until: float) -> TargetRows:
    import numpy as np

    rows = conn.execute(
        f"SELECT started_at_ns, outcome, json_extract(record, {_SUMMARY_PATHS}) FROM results "
        "WHERE target = ? AND started_at_ns >= ? AND started_at_ns <= ? ORDER BY started_at_ns",
        (target, ns(since), ns(until))).fetchall()
    vals = np.array([[np.nan if v is None else float(v) for v in json.loads(r[2])] for r in rows],
                    dtype=float).reshape(len(rows), 5)
    outcome = [r[1] for r in rows]
    return TargetRows(target, np.array([r[0] / 1e9 for r in rows], dtype=float),
                      np.array([o == "ok" for o in outcome], dtype=bool), outcome,
                      vals[:, 0], vals[:, 1], vals[:, 2], vals[:, 3], vals[:, 4])


def _quantiles(values: np.ndarray, qs: Sequence[float] = (0.5, 0.95, 0.99)) -> dict[str, float | None]:
    import numpy as np

    v = values[~np.isnan(values)]
    if not len(v):
        return {_qname(q): None for q in qs}
    got = np.percentile(v, [q * 100 for q in qs])
    return {_qname(q): round(float(x), 6) for q, x in zip(qs, got, strict=True)}


def summarize(rows: TargetRows, price: tuple[float, float] | None) -> Summary:
    import numpy as np

    ok = rows.ok
    errs: dict[str, int] = {}
    for o in rows.outcome:
        if o != "ok":
            errs[o] = errs.get(o, 0) + 1
    cost = None
    if price is not None:
        cost = float(np.nansum(rows.input_tokens) * price[0] + np.nansum(rows.output_tokens) * price[1]) / 1e6
    return Summary(
        target=rows.target, probes=len(rows.outcome), ok=int(ok.sum()), errors=dict(sorted(errs.items())),
        ttft=_quantiles(rows.ttft[ok]), e2e=_quantiles(rows.e2e[ok]), output_tps=_quantiles(rows.output_tps[ok]),
        cost_usd=cost, first=float(rows.t[0]) if len(rows.t) else None,
        last=float(rows.t[-1]) if len(rows.t) else None)


def summaries(conn: sqlite3.Connection, since: float, until: float, targets: Sequence[str] | None,
              price: Price) -> list[Summary]:
    """One Summary per stored target (selected by `targets`), one target in memory at a time."""
    keys = select_targets(targets_stored(conn, since, until), targets)
    return [summarize(target_rows(conn, k, since, until), price(k)) for k in keys]


def select_targets(stored: list[str], wanted: Sequence[str] | None) -> list[str]:
    if not wanted:
        return stored
    out = []
    for k in stored:
        for w in wanted:
            if k == w or (w.count("/") < 2 and k.startswith(w.rstrip("/") + "/")):
                out.append(k)
                break
    return out


def histogram(values: np.ndarray, bins: int = 40) -> dict[str, list[float]]:
    """Counts over equal bins from the 0.5th to the 99.5th percentile: a few outliers either
    side do not squash the body of the distribution into one bar (they land in the end bins)."""
    import numpy as np

    v = values[~np.isnan(values)]
    if not len(v):
        return {"edges": [], "counts": []}
    lo, hi = (float(x) for x in np.percentile(v, [0.5, 99.5]))
    if hi <= lo:
        lo, hi = max(0.0, lo - 0.001), hi + 0.001
    edges = np.linspace(lo, hi, bins + 1)
    counts, _ = np.histogram(np.clip(v, lo, hi), bins=edges)
    return {"edges": [round(float(e), 6) for e in edges], "counts": [int(c) for c in counts]}
