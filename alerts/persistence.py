"""Persistence: the alert state (alerts, groups, streaks, notifier state, outbox) as one
snapshot in the store and back, events to and from JSON, and the error-rate and burn-rate
windows rebuilt from the stored probe results, so a restart neither re-pages nor loses a
resolve."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import structlog

from alerts.config import Route, Rule
from alerts.grouping import Group
from alerts.history import BUCKET, HIGHER_IS_BETTER, MAX_AGE, TargetHistory, objective_field
from alerts.model import Alert, Event, Notification
from core.store import Store

log = structlog.get_logger("llm_vitals.alerts")

STATE_KEY = "alerts:state"

Objectives = frozenset[tuple[str, float]]


def event_dict(e: Event) -> dict[str, Any]:
    return {"kind": e.kind, "alert": e.alert.to_dict(), "at": e.at, "duration": e.duration}


def event_from(d: dict[str, Any]) -> Event:
    return Event(d["kind"], Alert.from_dict(d["alert"]), d["at"], d.get("duration"))


def snapshot(now: float, alerts: Iterable[Alert], groups: Iterable[Group], histories: Mapping[str, TargetHistory],
             notifiers: dict[str, dict[str, Any]], outbox: Sequence[Notification]) -> dict[str, Any]:
    """The state as saved (JSON). `notifiers`: each receiver's own state (Slack threads)."""
    return {
        "saved_at": now,
        "alerts": [a.to_dict() for a in alerts],
        "groups": [{"receiver": g.receiver, "labels": g.labels, "last_sent": g.last_sent, "reminders": g.reminders,
                    "escalated": g.escalated, "thread_key": g.thread_key, "created": g.created, "resent": g.resent,
                    # waiting for group_wait / group_interval: a restart must neither lose a page nor a resolve
                    "pending": [event_dict(e) for e in g.pending],
                    "resolved_events": [event_dict(e) for e in g.resolved_events]}
                   for g in groups],
        "streaks": {k: [h.fail_streak, h.mismatch_streak, h.last_seen, h.last_error, dict(h.labels)]
                    for k, h in histories.items()},
        "notifiers": notifiers,
        "outbox": [{"receiver": n.receiver, "group": n.group, "events": [event_dict(e) for e in n.events],
                    "thread_key": n.thread_key, "final": n.final} for n in outbox],
    }


class Saved:
    """The state read back from the store, piece by piece (the engine restores them in order:
    alerts first, since a saved group finds its route through the live alerts)."""

    def __init__(self, store: Store) -> None:
        self.state: dict[str, Any] = store.get_state(STATE_KEY) or {}

    def alerts(self) -> dict[str, Alert]:
        return {a.fingerprint: a for a in map(Alert.from_dict, self.state.get("alerts", []))}

    def histories(self, now: float, objectives: Objectives) -> dict[str, TargetHistory]:
        # The daemon's own downtime is not a target's silence: no_data restarts its clock.
        downtime = max(0.0, now - self.state.get("saved_at", now))
        return {key: TargetHistory(labels, last_seen=seen + downtime, fail_streak=fail, mismatch_streak=mismatch,
                                   last_error=err, objectives=objectives)
                for key, (fail, mismatch, seen, err, labels) in self.state.get("streaks", {}).items()}

    def groups(self, alerts: Mapping[str, Alert],
               route_of: Callable[[str, dict[str, str], list[Alert]], Route]) -> list[Group]:
        out = []
        for g in self.state.get("groups", []):
            # the live alert (a held-back page marks it), or, for a resolve, the one saved with the event
            pending = [replace(e, alert=alerts.get(e.alert.fingerprint, e.alert))
                       for e in map(event_from, g.get("pending", []))]
            resolved = [event_from(d) for d in g.get("resolved_events", [])]
            route = route_of(g["receiver"], g["labels"], [e.alert for e in pending])
            out.append(Group(g["receiver"], g["labels"], route, pending, g["created"], g["last_sent"], g["reminders"],
                             g["escalated"], g["thread_key"], resolved, resent=g.get("resent")))
        return out

    def notifiers(self) -> dict[str, dict[str, Any]]:
        return dict(self.state.get("notifiers", {}))

    def outbox(self) -> list[Notification]:
        return [Notification(d["receiver"], d["group"], [event_from(x) for x in d["events"]], d["thread_key"],
                             final=d["final"]) for d in self.state.get("outbox", [])]


async def restore_windows(store: Store, rules: Sequence[Rule], objectives: Objectives,
                          histories: Mapping[str, TargetHistory], now: float) -> None:
    """Error-rate and burn-rate windows rebuilt from the stored probe results, for the
    targets in `histories`: a restart then neither resolves a burn-rate alert on the first
    good probe nor pages it again once its windows have refilled. Read in a thread (days of
    results take a moment)."""
    try:
        recent, buckets = await asyncio.to_thread(_read_windows, store, rules, objectives, now, set(histories))
        for target in recent.keys() | buckets.keys():
            if target in histories:
                histories[target].restore(recent.get(target, []), buckets.get(target, []))
        if recent or buckets:
            log.info("alert_windows_restored", targets=len(recent.keys() | buckets.keys()),
                     error_window_probes=sum(len(v) for v in recent.values()),
                     burn_window_probes=sum(b[1] for v in buckets.values() for b in v))
    except Exception:
        log.exception("alert_windows_restore_failed")


def _read_windows(store: Store, rules: Sequence[Rule], objectives: Objectives, now: float, known: set[str]
                  ) -> tuple[dict[str, list[tuple[float, bool]]], dict[str, list[list]]]:  # type: ignore[type-arg]
    err_w = max((r.window for r in rules if r.kind == "error_rate"), default=0.0)
    burn_w = max((w for r in rules if r.kind == "burn_rate" and r.objective is not None
                  for long_w, short_w, _ in [*r.objective.page, *r.objective.ticket] for w in (long_w, short_w)),
                 default=0.0)
    recent: dict[str, list[tuple[float, bool]]] = {}
    if err_w:
        for target, at, ok in store.outcomes_since(now - err_w, now):
            if target in known:
                recent.setdefault(target, []).append((at, ok))
    buckets: dict[str, list[list]] = {}  # type: ignore[type-arg]
    if burn_w:
        slow = sorted(objectives)
        since = now - min(burn_w + BUCKET, MAX_AGE)
        fields = [(objective_field(m), t, "<=" if m in HIGHER_IS_BETTER else ">=") for m, t in slow]
        for target, start, n, failed, counts in store.outcome_buckets(since, now, BUCKET, fields):
            if target in known:
                buckets.setdefault(target, []).append(
                    [start, n, failed, {obj: c for obj, c in zip(slow, counts, strict=True) if c}])
    return recent, buckets
