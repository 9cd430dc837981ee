"""The status page (`/`, `/target/…`, `/compare`) and the data behind it: `/api/v1/status`
with each target's availability and links, `/api/v1/history` with the series the page draws.

The page is one HTML document with everything inline (uPlot, its CSS, our script): it works
offline, needs no CDN, and sits behind the same bearer token as the API. It draws itself in
the browser from the two JSON endpoints and refreshes them on a timer.

History is read from SQLite in a thread (never on the event loop), at most two queries at a
time, and the answers are cached for a few seconds: a wall of browsers costs one query.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from core.durations import parse_duration
from daemon import history, status, sweep_store
from daemon.htmldoc import asset, document

if TYPE_CHECKING:
    from daemon.process import Daemon

AVAILABILITY_WINDOWS = {"24h": 86400.0, "7d": 7 * 86400.0}
AVAILABILITY_TTL = 5.0
STATUS_TTL = 1.0
HISTORY_TTL = 10.0
SLOW_TTL = 60.0  # all-target queries (sparklines, comparison): seconds of SQLite at 1,000 targets
CACHE_ENTRIES = 64
QUERIES_AT_ONCE = 2
GRAFANA_DASHBOARD = "llm-vitals-fleet"
SPARK_BUCKET = 900.0


def finite(value: Any) -> Any:
    """NaN and infinities as null: JSON has neither, and a browser's JSON.parse rejects the
    whole answer over one (the detector reports NaN while it learns a baseline)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


class TtlCache:
    def __init__(self, entries: int = CACHE_ENTRIES) -> None:
        self._items: dict[Any, tuple[float, Any]] = {}
        self._entries = entries

    def get(self, key: Any, now: float) -> Any:
        hit = self._items.get(key)
        return hit[1] if hit is not None and hit[0] > now else None

    def put(self, key: Any, value: Any, expires: float, now: float) -> None:
        if len(self._items) >= self._entries:
            for k in [k for k, (exp, _) in self._items.items() if exp <= now]:
                del self._items[k]
            while len(self._items) >= self._entries:
                del self._items[next(iter(self._items))]  # the oldest entry
        self._items[key] = (expires, value)


class BadQuery(ValueError):
    pass


class StatusPage:
    def __init__(self, daemon: Daemon, clock: Callable[[], float] = time.time) -> None:
        self.daemon = daemon
        self.clock = clock
        self._cache = TtlCache()
        self._sem = asyncio.Semaphore(QUERIES_AT_ONCE)
        self._availability = history.Availability(AVAILABILITY_WINDOWS)
        self._quantiles: dict[str, history.QuantileCache] = {}

    # -- reading the store (in a thread) ------------------------------------------------
    async def _read(self, key: Any, ttl: float, fn: Callable[..., Any], *args: Any) -> Any:
        now = self.clock()
        hit = self._cache.get(key, now)
        if hit is not None:
            return hit
        async with self._sem:
            hit = self._cache.get(key, self.clock())  # another request may have read it meanwhile
            if hit is not None:
                return hit
            value = await asyncio.to_thread(self._with_conn, fn, *args)
        now = self.clock()
        self._cache.put(key, value, now + ttl, now)
        return value

    def _with_conn(self, fn: Callable[..., Any], *args: Any) -> Any:
        with self.daemon.store.reading() as conn:
            return fn(conn, *args)

    # -- /api/v1/status -------------------------------------------------------------
    async def status(self) -> dict[str, Any]:
        # every open page asks every 5 s; at 1,000 targets one answer is a few ms of the loop
        now = self.clock()
        hit = self._cache.get(("status",), now)
        if hit is not None:
            return dict(hit)
        st = status.status(self.daemon)
        avail = await self._read(("availability",), AVAILABILITY_TTL, self._availability, now)
        settings = self.daemon.settings
        grafana = settings.http.grafana_url
        for a in st.get("alerts", []):
            a["runbook_url"] = settings.alerts.runbook_for(str(a.get("rule", "")))
            a["grafana_url"] = self.grafana_link(a.get("labels", {}))
        for t in st["targets"]:
            per = avail.get(t["target"], {})
            t["availability"] = {w: per.get(w, {"probes": 0, "ok": 0, "ratio": None}) for w in AVAILABILITY_WINDOWS}
            t["grafana_url"] = self.grafana_link(t.get("labels", {}))
        st["links"] = {"grafana": grafana, "runbook": settings.alerts.runbook_url}
        st["now"] = now
        out = dict(finite(st))
        self._cache.put(("status",), out, now + STATUS_TTL, now)
        return out

    def grafana_link(self, labels: Mapping[str, str]) -> str | None:
        base = self.daemon.settings.http.grafana_url
        if base is None:
            return None
        params = {f"var-{k}": labels[k] for k in ("provider", "model") if labels.get(k)}
        return f"{base}/d/{GRAFANA_DASHBOARD}/{GRAFANA_DASHBOARD}" + (f"?{urlencode(params)}" if params else "")

    # -- /api/v1/history ------------------------------------------------------------
    async def history(self, query: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        try:
            return 200, finite(await self._history(query))
        except BadQuery as exc:
            return 400, {"error": str(exc)}

    async def _history(self, query: Mapping[str, str]) -> dict[str, Any]:
        target = query.get("target") or None
        metric = query.get("metric") or ("probes" if target else "ttft")
        retention = float(self.daemon.settings.storage.retention)
        since_s = _duration(query, "since", 86400.0)
        if since_s <= 0:
            raise BadQuery("since: must be greater than 0")
        since_s = min(since_s, retention)
        now = self.clock()
        since = now - since_s
        # rounded so that requests a moment apart share a cache entry
        slot = round(now / 5)
        if metric == "probes":
            if not target:
                raise BadQuery("metric probes needs target=PROVIDER/MODEL/PROBE")
            return dict(await self._read(("probes", target, since_s, slot), HISTORY_TTL, history.probes, target, since, now))
        if metric == "errors":
            rows = await self._read(("errors", target, since_s, slot), HISTORY_TTL, history.errors, target, since, now)
            return {"target": target, "since": since, "until": now, "errors": rows}
        if metric == "availability":
            avail = await self._read(("availability",), AVAILABILITY_TTL, self._availability, now)
            return {"availability": {k: v for k, v in avail.items() if target is None or k == target}}
        if metric == "summary":
            price = self._price
            rows = await self._read(("summary", target, since_s, round(now / SLOW_TTL)), SLOW_TTL,
                                    lambda c, s, u, t: [x.to_dict() for x in history.summaries(c, s, u, t, price)],
                                    since, now, [target] if target else self._target_keys())
            return {"since": since, "until": now, "summaries": rows}
        if metric in history.QUANTILE_FIELDS:
            bucket = _duration(query, "bucket", SPARK_BUCKET)
            if bucket <= 0:
                raise BadQuery("bucket: must be greater than 0")
            if target:
                out = await self._read(("q", metric, target, since_s, bucket, slot), HISTORY_TTL,
                                       history.quantile_series, metric, since, now, bucket, [target])
            else:  # every target (sparklines): only the newest buckets are read
                cache = self._quantiles.setdefault(metric, history.QuantileCache(metric))
                out = await self._read(("q", metric, since_s, bucket, round(now / SLOW_TTL)), SLOW_TTL,
                                       cache, since, now, bucket, self._target_keys())
            return {"since": since, "until": now, **out}
        known = ", ".join(["probes", "errors", "availability", "summary", *sorted(history.QUANTILE_FIELDS)])
        raise BadQuery(f"metric {metric!r}: expected one of {known}")

    # -- /api/v1/sweeps -------------------------------------------------------------
    async def sweeps(self, query: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        """Each scheduled sweep: its config and state, its last run (every level) and its
        recent runs (time, outcome, knee); `name=` narrows to one sweep."""
        state = self.daemon.sweeps.state()
        name = query.get("name") or None
        if name is not None:
            state = [w for w in state if w["name"] == name]
            if not state:
                return 404, {"error": f"no scheduled sweep named {name!r}"}
        try:
            since_s = _duration(query, "since", 30 * 86400.0)
        except BadQuery as exc:
            return 400, {"error": str(exc)}
        now = self.clock()
        names = [w["name"] for w in state]
        recent = await self._read(("sweeps", tuple(names), since_s, round(now / 5)), HISTORY_TTL,
                                  _sweep_runs, names, now - since_s, now)
        out = []
        for w in state:
            runs = recent.get(w["name"], [])
            last = next((r for r in runs if r["outcome"] != "refused"), None)
            out.append({**w, "last": last, "runs": [_run_summary(r) for r in runs]})
        return 200, finite({"now": now, "sweeps": out})

    def _target_keys(self) -> list[str]:
        return self.daemon.target_keys()

    def _price(self, key: str) -> tuple[float, float] | None:
        provider, _, rest = key.partition("/")
        model = rest.partition("/")[0]
        p = self.daemon.settings.price_for(provider, model)
        return None if p is None else (p.input_per_mtok, p.output_per_mtok)

    # -- the page -------------------------------------------------------------------
    def html(self, view: str, target: str | None = None) -> str:
        s = self.daemon.settings
        boot = {
            "view": view,
            "target": target,
            "region": s.region,
            "grafana_url": s.http.grafana_url,
            "refresh_seconds": 5,
            "target_url": "/target/",
        }
        title = f"{target} · llm-vitals" if target else f"llm-vitals · {s.region}"
        return document(title, boot, asset("statuspage.js"))


def _sweep_runs(conn: Any, names: list[str], since: float, until: float) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for name in names:
        out[name] = [r.to_dict() for r in sweep_store.runs(conn, since, until, name, limit=100)]
        if not any(r["outcome"] != "refused" for r in out[name]):  # the last measured run, however old
            older = [r.to_dict() for r in sweep_store.runs(conn, 0.0, since, name, limit=50)]
            out[name] += [r for r in older if r["outcome"] != "refused"][:1]
    return out


def _run_summary(r: dict[str, Any]) -> dict[str, Any]:
    sat = r.get("saturation")
    return {"started_at": r["started_at"], "finished_at": r["finished_at"], "outcome": r["outcome"],
            "saturation": None if sat is None else sat["concurrency"], "reason": r.get("reason")}


def _duration(query: Mapping[str, str], name: str, default: float) -> float:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return parse_duration(raw)
    except ValueError as exc:
        raise BadQuery(f"{name}: {exc}") from None
