"""What the daemon says about itself: liveness (/healthz), readiness (/readyz) and the full
status (/api/v1/status, the status page). Read-only views over the running daemon."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from core.aggregator import METRICS, WINDOWS

if TYPE_CHECKING:
    from daemon.process import Daemon


def health(d: Daemon) -> tuple[bool, dict[str, Any]]:
    return d.loop_monitor.alive(), {"event_loop_lag_seconds": round(d.loop_monitor.lag, 6)}


def readiness(d: Daemon) -> tuple[bool, dict[str, Any]]:
    sched = d.scheduler
    running = sched is not None and sched.running
    total = len(d.targets)
    done = len(sched.completed) if sched else 0
    sinks = {name: s.health() for name, s in d.sinks.items()}
    degraded = sorted(n for n, h in sinks.items() if not h.get("ok", True))
    return running and done >= total, {
        "config": d.source,
        "scheduler_running": running,
        "first_cycle_done": done >= total,
        "targets_probed": done,
        "targets": total,
        "sinks": sinks,
        "degraded_sinks": degraded,
    }


def state_of(d: Daemon, key: str, alerts: list[dict[str, Any]] | None = None, now: float | None = None,
             timeout: float = 0.0) -> str:
    """One word per target that agrees with the alerts: an alert firing on it (told, or all
    muted: silenced), pending, then what the probes say. `stale`: no result for 3 intervals
    past the last probe's deadline (its timeout)."""
    alerts = alerts or []
    firing = [a for a in alerts if a.get("state") == "firing"]
    if any(not a.get("muted") for a in firing):
        return "firing"
    if firing:
        return "silenced"
    if any(a.get("state") == "pending" for a in alerts):
        return "pending"
    last = d.bookkeeping.last.get(key)
    if last is None:
        return "pending-first-probe"
    if now is not None:
        interval = d.settings.interval_for(last.provider, last.model)
        deadline = last.started_at.timestamp() + timeout
        if now - deadline > 3 * interval:
            return "stale"
    if not last.ok:
        return "failing"
    if any(v.anomalous for (t, _m), v in d.verdicts.items() if t == key):
        return "anomalous"
    return "ok"


def status(d: Daemon) -> dict[str, Any]:
    ready, detail = readiness(d)
    now = time.time()
    alerts = d.alerts.firing() if d.alerts is not None else []
    by_target: dict[str, list[dict[str, Any]]] = {}
    for a in alerts:
        lab = a.get("labels", {})
        by_target.setdefault("/".join(lab.get(k, "") for k in ("provider", "model", "probe")), []).append(a)
    targets = []
    for t in d.targets:
        key = t.key
        quant: dict[str, dict[str, dict[str, float]]] = {}
        for metric in METRICS:
            for window in WINDOWS:
                qs = d.aggregator.quantiles(key, metric, window, (0.5, 0.95, 0.99))
                if qs:
                    quant.setdefault(metric, {})[window] = {f"{q:g}": v for q, v in qs.items()}
        last = d.bookkeeping.last.get(key)
        anomalies = [
            {"metric": v.metric, "score": v.score, "anomalous": v.anomalous, "effect": v.effect,
             "baseline": v.baseline, "recent": v.recent}
            for (tk, _m), v in d.verdicts.items() if tk == key
        ]
        targets.append({
            "target": key,
            "labels": t.labels,
            "kind": t.provider.kind,
            "interval": d.settings.interval_for(t.provider.name, t.model),
            "state": state_of(d, key, by_target.get(key), now, t.timeout),
            "last": None if last is None else last.to_json_dict(),
            "last_probe_age": None if last is None else round(now - last.started_at.timestamp(), 3),
            "alerts": by_target.get(key, []),
            "quantiles": quant,
            "anomalies": anomalies,
        })
    return {
        "region": d.settings.region,
        "shard": {"shard": d.settings.sharding.index, "shards": d.settings.sharding.shards},
        "started_at": d.started_at.isoformat(),
        "ready": ready,
        "readiness": detail,
        "event_loop_lag_seconds": d.loop_monitor.lag,
        "budget": {**d.budget.state(), "paused": d.budget.exhausted()},
        "sweeps": d.sweeps.state(),
        "targets": targets,
        "alerts": alerts,
    }
