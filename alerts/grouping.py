"""Grouping and routing: events routed into groups per route (group_by), groups flushed
after group_wait / group_interval, reminders (repeat_interval, optional cap), escalation
(escalate.after), re-sends while firing for a notifier that asks for them, and muting
(silences, maintenance windows, inhibition) checked before anything is sent.

Muting is checked on every evaluation, not only when an alert starts firing: a source
that starts later inhibits alerts already firing."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from alerts.config import AlertsConfig, Route
from alerts.model import Alert, Event, Notification
from alerts.notifiers import Notifier
from alerts.routing import in_maintenance, inhibited, route_for
from alerts.silences import silenced

log = structlog.get_logger("llm_vitals.alerts")


@dataclass
class Group:
    receiver: str
    labels: dict[str, str]
    route: Route
    pending: list[Event] = field(default_factory=list)
    created: float = 0.0
    last_sent: float | None = None
    reminders: int = 0
    escalated: bool = False
    thread_key: str = ""
    resolved_events: list[Event] = field(default_factory=list)
    # a resend to a channel that forgets firing alerts (Alertmanager); not a notification
    # for group_interval's sake, or resends every minute would hold back a new page or a
    # resolve of the same group for as long as any of its alerts fires
    resent: float | None = None

    @property
    def key(self) -> str:
        return self.receiver + "|" + ",".join(f"{k}={v}" for k, v in sorted(self.labels.items()))


def with_rule(a: Alert) -> dict[str, str]:
    """Labels for matching (silences, routes, inhibition): the alert's, plus `rule`."""
    return {**a.labels, "rule": a.rule}


class Grouping:
    """The engine's groups, and what they tell. `alerts` is the engine's live alert table
    (read here, changed only by the state machine, except `notified`)."""

    def __init__(self, cfg: AlertsConfig, alerts: dict[str, Alert], *,
                 silences: Callable[[], list[dict[str, Any]]], send: Callable[[Notification], None],
                 notifier: Callable[[str], Notifier | None]) -> None:
        self.cfg = cfg
        self.alerts = alerts
        self.groups: dict[str, Group] = {}
        self.mutes: dict[str, str] = {}  # firing alerts muted at the last evaluation: fingerprint → why
        self._silences = silences
        self._send = send
        self._notifier = notifier

    # -- muting ----------------------------------------------------------------------
    def muted(self, a: Alert, now: float, silences: list[dict[str, Any]]) -> str | None:
        """Why a firing alert is not told, or None. `silences`: the active ones, read once
        per pass over the alerts (it is a database read)."""
        labels = with_rule(a)
        if silenced(labels, silences, now):
            return "silenced"
        if in_maintenance(list(self.cfg.maintenance), labels, now):
            return "maintenance"
        firing = [with_rule(x) for x in self.alerts.values() if x.state == "firing" and x is not a]
        if inhibited(list(self.cfg.inhibit), labels, firing):
            return "inhibited"
        return None

    def unmuted(self, now: float) -> list[Event]:
        """Firing alerts that were muted when they started and no longer are: tell now."""
        silences = self._silences()
        return [Event("firing", a, now) for a in self.alerts.values()
                if a.state == "firing" and not a.notified and self.muted(a, now, silences) is None]

    def _note_mutes(self, mutes: dict[str, str]) -> None:
        for fp, why in mutes.items():
            if self.mutes.get(fp) != why:
                log.info("alert_muted", rule=self.alerts[fp].rule, labels=self.alerts[fp].labels, why=why)
        for fp in self.mutes.keys() - mutes.keys():
            gone = self.alerts.get(fp)
            if gone is not None and gone.state == "firing":
                log.info("alert_unmuted", rule=gone.rule, labels=gone.labels, why=self.mutes[fp])
        self.mutes = mutes

    # -- routing ---------------------------------------------------------------------
    def route(self, events: list[Event], now: float) -> None:
        root = self.cfg.route
        if root is None:
            return
        silences = self._silences() if any(e.kind == "firing" for e in events) else []
        for e in events:
            a = e.alert
            if e.kind == "firing":
                muted = self.muted(a, now, silences)
                if muted:
                    log.info("alert_notification_suppressed", rule=a.rule, labels=a.labels, why=muted)
                    continue
                a.notified = True
            elif not a.notified:
                continue  # its firing was never told: neither is its resolve
            for route in route_for(root, with_rule(a)) or [root]:
                labels = {k: a.labels.get(k, "") for k in route.group_by}
                g = Group(str(route.receiver), labels, route)
                g = self.groups.setdefault(g.key, g)
                if not g.pending and g.last_sent is None:
                    g.created = now
                    g.thread_key = uuid.uuid4().hex[:12]
                g.pending.append(e)

    def route_of(self, receiver: str, labels: dict[str, str], extra: list[Alert]) -> Route:
        """The route a saved group came from: the one its alerts are routed to (a child route
        matched on e.g. severity keeps its own intervals and escalation), else the root."""
        root = self.cfg.route
        assert root is not None
        for a in [*self.alerts.values(), *extra]:
            if any(a.labels.get(k, "") != v for k, v in labels.items()):
                continue
            for r in route_for(root, with_rule(a)) or [root]:
                if str(r.receiver) == receiver and {k: a.labels.get(k, "") for k in r.group_by} == labels:
                    return r
        return next((r for r in route_for(root, labels) if r.receiver == receiver), root)

    # -- flushing --------------------------------------------------------------------
    def flush(self, now: float) -> None:
        root = self.cfg.route
        # Muting is checked on every evaluation, not only when an alert starts firing: a
        # provider-wide alert that starts after the per-model ones inhibits them from then on.
        silences = self._silences()
        mutes = {fp: why for fp, a in self.alerts.items()
                 if a.state == "firing" and (why := self.muted(a, now, silences))}
        self._note_mutes(mutes)
        for key, g in list(self.groups.items()):
            r = g.route
            due = g.created + r.group_wait if g.last_sent is None else g.last_sent + r.group_interval
            flush = bool(g.pending) and now >= due
            if flush:
                # Muted since it was routed (e.g. inhibited during group_wait): hold its page
                # back; it is told if it is still firing once unmuted (see unmuted).
                held = [e for e in g.pending if e.kind == "firing" and e.alert.fingerprint in mutes]
                for e in held:
                    e.alert.notified = False
                g.pending = [e for e in g.pending if not any(e is h for h in held)]
                flush = bool(g.pending)
            active = [a for a in self.alerts.values() if a.state == "firing" and a.notified
                      and all(a.labels.get(k, "") == v for k, v in g.labels.items())
                      and g.receiver in {str(x.receiver) for x in (route_for(root, with_rule(a)) or [root])}] \
                if root else []
            speaking = [a for a in active if a.fingerprint not in mutes]  # reminders, escalation
            if flush:
                # final: nothing of the group fires any more, the incident (and its thread) ends here
                self._send(Notification(g.receiver, g.labels, list(g.pending), g.thread_key, final=not active))
                if g.escalated:  # the escalation receiver's final message: every resolve since it was told
                    g.resolved_events += [e for e in g.pending if e.kind == "resolved"]
                g.pending.clear()
                g.last_sent = now
            elif not g.pending and speaking and g.last_sent is not None and now - g.last_sent >= r.repeat_interval and (
                    r.repeat_max is None or g.reminders < r.repeat_max):
                self._send(Notification(g.receiver, g.labels, [Event("reminder", a, now) for a in speaking],
                                        g.thread_key))
                g.reminders += 1
                g.last_sent = now
            notifier = self._notifier(g.receiver)
            if (notifier is not None and notifier.resends_while_firing and active and g.last_sent is not None
                    and now - max(g.last_sent, g.resent or 0.0) >= notifier.resend_interval):
                # e.g. Alertmanager forgets an alert whose endsAt passes: keep telling it while firing.
                self._send(Notification(g.receiver, g.labels, [Event("firing", a, now) for a in active], g.thread_key))
                g.resent = now
            if speaking and r.escalate is not None and not g.escalated:
                oldest = min(a.firing_since or now for a in speaking)
                if now - oldest >= r.escalate.after:
                    self._send(Notification(r.escalate.receiver, g.labels,
                                            [Event("firing", a, now) for a in speaking], g.thread_key + "-esc"))
                    g.escalated = True
            if not active and not g.pending:
                if g.escalated and r.escalate is not None and g.resolved_events:
                    self._send(Notification(r.escalate.receiver, g.labels, g.resolved_events, g.thread_key + "-esc",
                                            final=True))
                del self.groups[key]  # incident over: the next one starts a new thread
