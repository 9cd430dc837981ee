"""The alert engine: findings → state machine → grouping/routing → delivery queue.

inactive → pending (`for`) → firing → resolved, with hysteresis (`resolve_after` healthy
evaluations in a row) so a flapping provider pages once. Events are grouped per route
(group_by, group_wait, group_interval), reminded (repeat_interval, optional cap) and
escalated (escalate.after); silences, maintenance windows and inhibition are checked
before anything is sent (on every evaluation: a source that starts later inhibits alerts
already firing). Delivery runs in one bounded queue and task per receiver, with retries
and backoff, so a slow receiver delays only itself, and never blocks evaluation. State
(alerts, groups, streaks, silences, Slack threads) lives in the store, and the error-rate
and burn-rate windows are rebuilt from the stored probe results at start, so a restart
neither re-pages nor loses a resolve.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import structlog

from alerts import rules as rule_eval
from alerts.config import AlertsConfig, Route
from alerts.history import BUCKET, HIGHER_IS_BETTER, MAX_AGE, TargetHistory, objective_field
from alerts.model import (
    Alert,
    AlertMetrics,
    AlertTransition,
    Event,
    Finding,
    Notification,
    fingerprint,
)
from alerts.notifiers import DeliveryError, Notifier, build
from alerts.routing import in_maintenance, inhibited, route_for
from core.aggregator import Aggregator
from core.durations import format_duration, parse_duration
from core.loopslice import SLICE, LoopSlice
from core.result import ProbeResult
from core.store import Store
from detector.verdict import AnomalyVerdict

log = structlog.get_logger("llm_vitals.alerts")

STATE_KEY = "alerts:state"
SILENCES_KEY = "alerts:silences"
# A silence is a maintenance window, not a way to switch an alert off for good (that is
# the rule's job); the bound also keeps every end time a date that JSON and datetime hold.
MAX_SILENCE_SECONDS = 90 * 86400
MAX_ATTEMPTS = 10
MAX_BACKOFF = 300.0
EVAL_SLICE = SLICE  # seconds of rule evaluation per loop step
QUEUE_SIZE = 1000  # notifications waiting per receiver; beyond it the oldest is dropped (and counted)


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

    @property
    def key(self) -> str:
        return self.receiver + "|" + ",".join(f"{k}={v}" for k, v in sorted(self.labels.items()))


class AlertEngine:
    def __init__(self, cfg: AlertsConfig, *, store: Store, stats: Aggregator, metrics: AlertMetrics | None = None,
                 region: str = "local", clock: Callable[[], float] = time.time,
                 on_transition: Callable[[AlertTransition], None] | None = None, queue_size: int = QUEUE_SIZE) -> None:
        self.cfg = cfg
        self.store = store
        self.stats = stats
        self.metrics = metrics
        self.region = region
        self.clock = clock
        self.on_transition = on_transition
        self.histories: dict[str, TargetHistory] = {}
        self.alerts: dict[str, Alert] = {}
        self.groups: dict[str, Group] = {}
        self.verdicts: Mapping[tuple[str, str], AnomalyVerdict] = {}
        self.notifiers: dict[str, Notifier] = {r.name: build(r) for r in cfg.receivers}
        self.rules = list(cfg.rules) or (list(rule_eval.DEFAULT_RULES) if cfg.use_default_rules else [])
        self._objectives = frozenset(
            (r.objective.metric, r.objective.threshold) for r in self.rules
            if r.kind == "burn_rate" and r.objective is not None and r.objective.type == "latency")
        # One bounded queue and one worker per receiver: a hanging SMTP server or a dead
        # webhook only ever delays its own messages, never another receiver's.
        self._queues: dict[str, asyncio.Queue[tuple[Notification, int]]] = {
            name: asyncio.Queue(queue_size) for name in self.notifiers}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._save_lock = asyncio.Lock()
        self._mutes: dict[str, str] = {}  # firing alerts muted at the last evaluation: fingerprint → why
        self._restoring = False
        # what a stop could not deliver by its deadline: saved, and queued again at the next start
        self._inflight: dict[str, tuple[Notification, int]] = {}
        self._outbox: list[Notification] = []
        self._load()

    # -- inputs --------------------------------------------------------------------
    def observe(self, r: ProbeResult) -> None:
        h = self.histories.get(r.target)
        if h is None:
            h = self.histories[r.target] = TargetHistory(
                r.labels,
                objectives=self._objectives)
        h.observe(r, self.clock())

    def set_verdicts(self, verdicts: Mapping[tuple[str, str], AnomalyVerdict]) -> None:
        self.verdicts = verdicts

    def targets_known(self, keys: set[str]) -> None:
        for key in [k for k in self.histories if k not in keys]:
            del self.histories[key]

    # -- evaluation ----------------------------------------------------------------
    async def evaluate(self) -> None:
        if self._restoring:  # windows still being rebuilt: judging now could resolve what is still burning
            return
        now = self.clock()
        findings: list[Finding] = []
        # at 1,000 targets judging every rule is ~0.1 s of CPU (core/loopslice.py)
        loop_slice = LoopSlice(EVAL_SLICE)
        for key, h in list(self.histories.items()):
            if self.histories.get(key) is not h:
                continue  # removed by a reload meanwhile
            for rule in self.rules:
                f = rule_eval.evaluate(rule, key, h, self.stats, self.verdicts, now)
                if f is not None:
                    findings.append(f)
            await loop_slice.pause()
        findings = self._page_stays(findings)
        events = self._unmuted(now)  # before _advance: alerts firing from this evaluation on are not "unmuted"
        events += self._advance(findings, now)
        events += self._orphans(findings, now)
        self._route(events, now)
        self._flush_groups(now)
        self._export()
        try:
            await self._persist()
        except Exception:
            log.exception("alert_state_save_failed")

    def _page_stays(self, findings: list[Finding]) -> list[Finding]:
        """A burn-rate page still burning at ticket level stays the page (and its hysteresis
        holds): the severity it derives is part of its labels, so each dip of the fast windows
        resolved the page at once, and the next burst paged again."""
        derived = {r.name for r in self.rules if r.kind == "burn_rate" and "severity" not in r.labels}
        out = []
        for f in findings:
            if f.rule in derived and f.active and f.labels.get("severity") == "ticket":
                paged = {**f.labels, "severity": "page"}
                a = self.alerts.get(fingerprint(f.rule, paged))
                if a is not None and a.state == "firing":
                    f = replace(f, labels=paged)
            out.append(f)
        return out

    def _advance(self, findings: list[Finding], now: float) -> list[Event]:
        by_rule = {r.name: r for r in self.rules}
        events: list[Event] = []
        for f in findings:
            rule = by_rule[f.rule]
            a = self.alerts.get(_fp(f))
            if a is None:
                if not f.active:
                    continue
                a = self.alerts[_fp(f)] = Alert(f.rule, dict(f.labels))
            a.value, a.reason = f.value, f.reason or a.reason
            a.runbook_url = self.cfg.runbook_for(a.rule)  # follows a reloaded alerts.runbook_url
            if f.active:
                a.summary = f.summary
                a.healthy = 0
                if a.state == "inactive":
                    a.state, a.pending_since = "pending", now
                    self._transition(a, "pending", now)
                if a.state == "pending" and now - (a.pending_since or now) >= rule.for_:
                    a.state, a.firing_since = "firing", now
                    events.append(Event("firing", a, now))
                    self._transition(a, "firing", now)
            elif a.state == "pending":
                del self.alerts[a.fingerprint]
            elif a.state == "firing":
                a.healthy += 1
                if a.healthy >= rule.resolve_after:
                    events.append(Event("resolved", a, now, duration=now - (a.firing_since or now)))
                    self._transition(a, "resolved", now)
                    del self.alerts[a.fingerprint]
        return events

    def _orphans(self, findings: list[Finding], now: float) -> list[Event]:
        """Alerts nothing evaluates any more (target or rule removed, fingerprint changed):
        resolve them instead of leaving them firing forever."""
        seen = {_fp(f) for f in findings}
        events = []
        for fp, a in list(self.alerts.items()):
            if fp in seen:
                continue
            key = "/".join(a.labels.get(k, "") for k in ("provider", "model", "probe"))
            gone = key not in self.histories or a.rule not in {r.name for r in self.rules}
            if gone or a.state == "firing":
                if a.state == "firing":
                    events.append(Event("resolved", a, now, duration=now - (a.firing_since or now)))
                    self._transition(a, "resolved", now)
                del self.alerts[fp]
        return events

    def _unmuted(self, now: float) -> list[Event]:
        """Firing alerts that were muted when they started and no longer are: tell now."""
        silences = self.silences()
        return [Event("firing", a, now) for a in self.alerts.values()
                if a.state == "firing" and not a.notified and self._muted(a, now, silences) is None]

    def _transition(self, a: Alert, state: str, now: float) -> None:
        log.info("alert_" + state, rule=a.rule, labels=a.labels, summary=a.summary, reason=a.reason)
        if self.on_transition is not None:
            self.on_transition(AlertTransition(datetime.fromtimestamp(now, UTC), a.rule, a.fingerprint, state,
                                               a.severity, dict(a.labels), a.value, a.summary))

    def _muted(self, a: Alert, now: float, silences: list[dict[str, Any]]) -> str | None:
        """Why a firing alert is not told, or None. `silences`: self.silences(), read once
        per pass over the alerts (it is a database read)."""
        labels = _with_rule(a)
        if any(_match(labels, s["match"]) and s.get("starts_at", 0) <= now < s["ends_at"] for s in silences):
            return "silenced"
        if in_maintenance(list(self.cfg.maintenance), labels, now):
            return "maintenance"
        firing = [_with_rule(x) for x in self.alerts.values() if x.state == "firing" and x is not a]
        if inhibited(list(self.cfg.inhibit), labels, firing):
            return "inhibited"
        return None

    def _route(self, events: list[Event], now: float) -> None:
        root = self.cfg.route
        if root is None:
            return
        silences = self.silences() if any(e.kind == "firing" for e in events) else []
        for e in events:
            a = e.alert
            if e.kind == "firing":
                muted = self._muted(a, now, silences)
                if muted:
                    log.info("alert_notification_suppressed", rule=a.rule, labels=a.labels, why=muted)
                    continue
                a.notified = True
            elif not a.notified:
                continue  # its firing was never told: neither is its resolve
            for route in route_for(root, _with_rule(a)) or [root]:
                labels = {k: a.labels.get(k, "") for k in route.group_by}
                g = Group(str(route.receiver), labels, route)
                g = self.groups.setdefault(g.key, g)
                if not g.pending and g.last_sent is None:
                    g.created = now
                    g.thread_key = uuid.uuid4().hex[:12]
                g.pending.append(e)

    def _flush_groups(self, now: float) -> None:
        root = self.cfg.route
        # Muting is checked on every evaluation, not only when an alert starts firing: a
        # provider-wide alert that starts after the per-model ones inhibits them from then on.
        silences = self.silences()
        mutes = {fp: why for fp, a in self.alerts.items()
                 if a.state == "firing" and (why := self._muted(a, now, silences))}
        self._note_mutes(mutes)
        for key, g in list(self.groups.items()):
            r = g.route
            due = g.created + r.group_wait if g.last_sent is None else g.last_sent + r.group_interval
            flush = bool(g.pending) and now >= due
            if flush:
                # Muted since it was routed (e.g. inhibited during group_wait): hold its page
                # back; it is told if it is still firing once unmuted (see _unmuted).
                held = [e for e in g.pending if e.kind == "firing" and e.alert.fingerprint in mutes]
                for e in held:
                    e.alert.notified = False
                g.pending = [e for e in g.pending if not any(e is h for h in held)]
                flush = bool(g.pending)
            active = [a for a in self.alerts.values() if a.state == "firing" and a.notified
                      and all(a.labels.get(k, "") == v for k, v in g.labels.items())
                      and g.receiver in {str(x.receiver) for x in (route_for(root, _with_rule(a)) or [root])}] \
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
            resend = getattr(self.notifiers.get(g.receiver), "resends_while_firing", False)
            if resend and active and g.last_sent is not None and now - g.last_sent >= self.notifiers[g.receiver].cfg.resend_interval:
                # Alertmanager forgets an alert whose endsAt passes: keep telling it while firing.
                self._send(Notification(g.receiver, g.labels, [Event("firing", a, now) for a in active], g.thread_key))
                g.last_sent = now
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

    def _note_mutes(self, mutes: dict[str, str]) -> None:
        for fp, why in mutes.items():
            if self._mutes.get(fp) != why:
                log.info("alert_muted", rule=self.alerts[fp].rule, labels=self.alerts[fp].labels, why=why)
        for fp in self._mutes.keys() - mutes.keys():
            gone = self.alerts.get(fp)
            if gone is not None and gone.state == "firing":
                log.info("alert_unmuted", rule=gone.rule, labels=gone.labels, why=self._mutes[fp])
        self._mutes = mutes

    def _export(self) -> None:
        if self.metrics is None:
            return
        counts: dict[tuple[str, str], int] = {}
        for a in self.alerts.values():
            if a.state == "firing":
                counts[(a.rule, a.severity)] = counts.get((a.rule, a.severity), 0) + 1
        for rule in self.rules:
            sev = rule.labels.get("severity", "page")
            self.metrics.alerts_firing.labels(rule.name, sev).set(counts.pop((rule.name, sev), 0))
        for (rule_name, sev), n in counts.items():
            self.metrics.alerts_firing.labels(rule_name, sev).set(n)

    # -- delivery ------------------------------------------------------------------
    def _send(self, n: Notification) -> None:
        # Freeze the alerts as they are now: a retry (or a message waiting behind a slow
        # one) says what was true when it was made, not what later evaluations changed.
        n.events = [replace(e, alert=replace(e.alert, labels=dict(e.alert.labels))) for e in n.events]
        self._enqueue(n, 0)

    def _enqueue(self, n: Notification, attempt: int) -> None:
        q = self._queues.get(n.receiver)
        if q is None:
            self._count(n.receiver, "failed")
            log.error("notification_unknown_receiver", receiver=n.receiver)
            return
        if q.full():  # never wait: evaluation must go on; the newest state matters most
            old, _ = q.get_nowait()
            q.task_done()
            self._count(n.receiver, "dropped")
            log.error("notification_dropped", receiver=n.receiver, title=old.title(), queued=q.qsize() + 1)
        q.put_nowait((n, attempt))
        self._depth(n.receiver)

    def _depth(self, receiver: str) -> None:
        if self.metrics is not None and receiver in self._queues:
            self.metrics.queue_depth.labels("notify_" + receiver).set(self._queues[receiver].qsize())

    async def _deliver_loop(self, receiver: str) -> None:
        q = self._queues[receiver]
        while True:
            n, attempt = await q.get()
            self._inflight[receiver] = (n, attempt)
            try:
                self._depth(receiver)
                await self._deliver(n, attempt)
            except Exception:  # _deliver handles its own errors; this keeps the worker alive regardless
                log.exception("notification_worker_error", receiver=receiver)
            finally:
                q.task_done()
                if not (t := asyncio.current_task()) or not t.cancelling():
                    self._inflight.pop(receiver, None)

    async def _deliver(self, n: Notification, attempt: int) -> bool:
        """Deliver, retrying in place: the receiver's later messages wait behind this one (only
        they do), so a page retried after a refusal never lands after its own resolve."""
        while True:
            ok, delay = await self._attempt(n, attempt)
            if delay is None:
                return ok
            attempt += 1
            await asyncio.sleep(delay)

    async def _attempt(self, n: Notification, attempt: int) -> tuple[bool, float | None]:
        """One try: (delivered, seconds until the retry, or None for no retry)."""
        notifier = self.notifiers.get(n.receiver)
        if notifier is None:
            log.error("notification_unknown_receiver", receiver=n.receiver)
            return False, None
        before = notifier.state()
        try:
            await asyncio.wait_for(notifier.send(n), notifier.cfg.timeout + 5)
        except (DeliveryError, TimeoutError) as exc:
            permanent = isinstance(exc, DeliveryError) and exc.permanent
            retry_after = exc.retry_after if isinstance(exc, DeliveryError) else None
            if permanent or attempt + 1 >= MAX_ATTEMPTS or n.test:
                self._count(n.receiver, "failed")
                log.error("notification_failed", receiver=n.receiver, title=n.title(), error=str(exc) or "timeout",
                          attempts=attempt + 1)
                return False, None
            # capped: the receiver's later messages wait behind this retry
            delay = min(MAX_BACKOFF, retry_after if retry_after is not None else 2.0 ** attempt)
            self._count(n.receiver, "retried")
            log.warning("notification_retry", receiver=n.receiver, error=str(exc) or "timeout", retry_in=delay)
            return False, delay
        except Exception as exc:
            self._count(n.receiver, "failed")
            log.exception("notification_error", receiver=n.receiver, error=type(exc).__name__)
            return False, None
        self._count(n.receiver, "sent")
        log.info("notification_sent", receiver=n.receiver, title=n.title())
        if notifier.state() != before:  # e.g. a new Slack thread: persist it now, not at the next evaluation
            try:
                await self._persist()
            except Exception:
                log.exception("alert_state_save_failed")
        return True, None

    def _count(self, receiver: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.notifications.labels(receiver, outcome).inc()

    async def send_test(self, receiver: str) -> tuple[bool, str]:
        if receiver not in self.notifiers:
            return False, f"unknown receiver {receiver!r} (known: {', '.join(sorted(self.notifiers)) or 'none'})"
        n = Notification(receiver, {}, [], "", test=True)
        ok = await self._deliver(n, 0)
        return ok, "sent" if ok else "failed (see the daemon log)"

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        await self.restore_windows()
        for name, notifier in self.notifiers.items():
            try:
                notifier.validate()
            except ValueError as exc:
                log.error("receiver_invalid", receiver=name, error=str(exc))
        for name in self._queues:
            self._workers[name] = asyncio.create_task(self._deliver_loop(name), name=f"alert-delivery-{name}")

    async def stop(self, deadline: float) -> None:
        if self._workers:  # let the workers finish what is queued, within the deadline
            try:
                await asyncio.wait_for(asyncio.gather(*(q.join() for q in self._queues.values())), deadline)
            except TimeoutError:
                left = {name: q.qsize() for name, q in self._queues.items() if q.qsize()}
                log.warning("notification_queues_not_drained", left=left)
        tasks = list(self._workers.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._workers.clear()
        # Undelivered (a receiver down or slow past the deadline): kept for the next start, so
        # a page or a resolve is late rather than lost. The one being sent may have landed:
        # it goes again (a duplicate beats a lost page).
        undelivered = [n for n, _ in self._inflight.values()]
        self._inflight.clear()
        for q in self._queues.values():
            while not q.empty():
                undelivered.append(q.get_nowait()[0])
                q.task_done()
        self._outbox = [n for n in undelivered if not n.test]
        if self._outbox:
            log.warning("notifications_kept_for_next_start", count=len(self._outbox),
                        receivers=sorted({n.receiver for n in self._outbox}))
        await self._persist()

    # -- views ---------------------------------------------------------------------
    def firing(self) -> list[dict[str, Any]]:
        from alerts.rules import matches

        active = self.silences()

        def silenced_by(a: Alert) -> list[dict[str, Any]]:
            # every silence that matches the alert, with its end, wherever the alert is shown
            return [{"id": si["id"], "ends_at": _rfc3339(si["ends_at"]), "comment": si.get("comment", "")}
                    for si in active if matches(a.labels, si["match"])]

        return [
            {"rule": a.rule, "labels": a.labels, "state": a.state, "severity": a.severity, "summary": a.summary,
             "reason": a.reason, "value": a.value, "since": a.firing_since or a.pending_since,
             "since_at": _rfc3339(a.firing_since or a.pending_since),
             "fingerprint": a.fingerprint, "runbook_url": a.runbook_url,
             # why a firing alert is not told (silenced, maintenance, inhibited) as of the last
             # evaluation, else None: the status page shows a silenced target as such
             "muted": self._mutes.get(a.fingerprint) if a.state == "firing" else None,
             "silenced_by": silenced_by(a)}
            for a in sorted(self.alerts.values(), key=lambda x: (x.state != "firing", x.rule))
        ]

    # -- silences (config + store; the store ones come from the CLI and the API) ----
    def silences(self) -> list[dict[str, Any]]:
        now = self.clock()
        configured = [{"id": s.id or f"config-{i}", "match": s.match,
                       "starts_at": s.starts_at.timestamp() if s.starts_at else 0.0, "ends_at": s.ends_at.timestamp(),
                       "comment": s.comment, "created_by": s.created_by} for i, s in enumerate(self.cfg.silences)]
        stored = [_bounded(s, now) for s in self.store.get_state(SILENCES_KEY, []) if s["ends_at"] > now]
        return [{**si, "starts": _rfc3339(si["starts_at"]), "ends": _rfc3339(si["ends_at"])}
                for si in configured + stored]

    def add_silence(self, match: dict[str, str], duration: float, comment: str = "", created_by: str = "api") -> str:
        return add_silence(self.store, match, duration, comment, created_by, self.clock())

    def expire_silence(self, silence_id: str) -> bool:
        return expire_silence(self.store, silence_id, self.clock())

    # -- persistence ---------------------------------------------------------------
    async def _persist(self) -> None:
        """Snapshot on the event loop (nothing changes under it), write in a thread; one
        write at a time, so an older snapshot never overwrites a newer one."""
        async with self._save_lock:
            state = self._state()
            await asyncio.to_thread(self.store.put_state, STATE_KEY, state)

    def _state(self) -> dict[str, Any]:
        return {
            "saved_at": self.clock(),
            "alerts": [a.to_dict() for a in self.alerts.values()],
            "groups": [{"receiver": g.receiver, "labels": g.labels, "last_sent": g.last_sent, "reminders": g.reminders,
                        "escalated": g.escalated, "thread_key": g.thread_key, "created": g.created,
                        # waiting for group_wait / group_interval: a restart must neither lose a page nor a resolve
                        "pending": [_event_dict(e) for e in g.pending],
                        "resolved_events": [_event_dict(e) for e in g.resolved_events]}
                       for g in self.groups.values()],
            "streaks": {k: [h.fail_streak, h.mismatch_streak, h.last_seen, h.last_error, dict(h.labels)]
                        for k, h in self.histories.items()},
            "notifiers": {name: st for name, n in self.notifiers.items() if (st := n.state()) is not None},
            "outbox": [{"receiver": n.receiver, "group": n.group, "events": [_event_dict(e) for e in n.events],
                        "thread_key": n.thread_key, "final": n.final} for n in self._outbox],
        }

    def _load(self) -> None:
        state = self.store.get_state(STATE_KEY) or {}
        for d in state.get("alerts", []):
            a = Alert.from_dict(d)
            self.alerts[a.fingerprint] = a
        # The daemon's own downtime is not a target's silence: no_data restarts its clock.
        downtime = max(0.0, self.clock() - state.get("saved_at", self.clock()))
        for key, (fail, mismatch, seen, err, labels) in state.get("streaks", {}).items():
            h = TargetHistory(labels, last_seen=seen + downtime, fail_streak=fail, mismatch_streak=mismatch,
                              last_error=err, objectives=self._objectives)
            self.histories[key] = h
        root = self.cfg.route
        for g in state.get("groups", []):
            if root is None:
                break
            # the live alert (a held-back page marks it), or, for a resolve, the one saved with the event
            pending = [replace(e, alert=self.alerts.get(e.alert.fingerprint, e.alert))
                       for e in map(_event_from, g.get("pending", []))]
            resolved = [_event_from(d) for d in g.get("resolved_events", [])]
            route = self._route_of(g["receiver"], g["labels"], [e.alert for e in pending])
            grp = Group(g["receiver"], g["labels"], route, pending, g["created"], g["last_sent"], g["reminders"],
                        g["escalated"], g["thread_key"], resolved)
            self.groups[grp.key] = grp
        for name, st in state.get("notifiers", {}).items():
            if name in self.notifiers:  # Slack threads: a resolve after a restart goes in the incident's thread
                try:
                    self.notifiers[name].restore(st)
                except Exception:
                    log.exception("notifier_state_restore_failed", receiver=name)
        for d in state.get("outbox", []):
            events = [_event_from(x) for x in d["events"]]
            self._enqueue(Notification(d["receiver"], d["group"], events, d["thread_key"], final=d["final"]), 0)
        if state.get("outbox"):
            log.info("notifications_restored", count=len(state["outbox"]))
        if self.alerts:
            log.info("alert_state_restored", alerts=len(self.alerts))

    def _route_of(self, receiver: str, labels: dict[str, str], extra: list[Alert]) -> Route:
        """The route a saved group came from: the one its alerts are routed to (a child route
        matched on e.g. severity keeps its own intervals and escalation), else the root."""
        root = self.cfg.route
        assert root is not None
        for a in [*self.alerts.values(), *extra]:
            if any(a.labels.get(k, "") != v for k, v in labels.items()):
                continue
            for r in route_for(root, _with_rule(a)) or [root]:
                if str(r.receiver) == receiver and {k: a.labels.get(k, "") for k in r.group_by} == labels:
                    return r
        return next((r for r in route_for(root, labels) if r.receiver == receiver), root)

    async def restore_windows(self) -> None:
        """Error-rate and burn-rate windows rebuilt from the stored probe results, for the
        targets the saved state knows: a restart then neither resolves a burn-rate alert on
        the first good probe nor pages it again once its windows have refilled. Read in a
        thread (days of results take a moment); evaluations wait for it."""
        if not self.histories:
            return
        self._restoring = True
        try:
            recent, buckets = await asyncio.to_thread(self._read_windows, self.clock(), set(self.histories))
            for target in recent.keys() | buckets.keys():
                if target in self.histories:
                    self.histories[target].restore(recent.get(target, []), buckets.get(target, []))
            if recent or buckets:
                log.info("alert_windows_restored", targets=len(recent.keys() | buckets.keys()),
                         error_window_probes=sum(len(v) for v in recent.values()),
                         burn_window_probes=sum(b[1] for v in buckets.values() for b in v))
        except Exception:
            log.exception("alert_windows_restore_failed")
        finally:
            self._restoring = False

    def _read_windows(self, now: float, known: set[str]
                      ) -> tuple[dict[str, list[tuple[float, bool]]], dict[str, list[list]]]:  # type: ignore[type-arg]
        err_w = max((r.window for r in self.rules if r.kind == "error_rate"), default=0.0)
        burn_w = max((w for r in self.rules if r.kind == "burn_rate" and r.objective is not None
                      for long_w, short_w, _ in [*r.objective.page, *r.objective.ticket] for w in (long_w, short_w)),
                     default=0.0)
        recent: dict[str, list[tuple[float, bool]]] = {}
        if err_w:
            for target, at, ok in self.store.outcomes_since(now - err_w, now):
                if target in known:
                    recent.setdefault(target, []).append((at, ok))
        buckets: dict[str, list[list]] = {}  # type: ignore[type-arg]
        if burn_w:
            slow = sorted(self._objectives)
            since = now - min(burn_w + BUCKET, MAX_AGE)
            fields = [(objective_field(m), t, "<=" if m in HIGHER_IS_BETTER else ">=") for m, t in slow]
            for target, start, n, failed, counts in self.store.outcome_buckets(since, now, BUCKET, fields):
                if target in known:
                    buckets.setdefault(target, []).append(
                        [start, n, failed, {obj: c for obj, c in zip(slow, counts, strict=True) if c}])
        return recent, buckets


def _event_dict(e: Event) -> dict[str, Any]:
    return {"kind": e.kind, "alert": e.alert.to_dict(), "at": e.at, "duration": e.duration}


def _rfc3339(ts: float | None) -> str | None:
    """What a person reads: RFC 3339 UTC (the epoch-second fields stay for machines)."""
    if ts is None:
        return None
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _event_from(d: dict[str, Any]) -> Event:
    return Event(d["kind"], Alert.from_dict(d["alert"]), d["at"], d.get("duration"))


def _fp(f: Finding) -> str:
    return fingerprint(f.rule, f.labels)


def _with_rule(a: Alert) -> dict[str, str]:
    """Labels for matching (silences, routes, inhibition): the alert's, plus `rule`."""
    return {**a.labels, "rule": a.rule}


def _match(labels: Mapping[str, str], match: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in match.items())


def silence_duration(value: Any) -> float:
    """A silence's duration in seconds ('2h', 7200): finite, positive and at most
    MAX_SILENCE_SECONDS; ValueError with the reason otherwise."""
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError("must be positive")
    if seconds > MAX_SILENCE_SECONDS:
        raise ValueError(f"{format_duration(seconds)} is longer than the maximum {format_duration(MAX_SILENCE_SECONDS)}")
    return seconds


def _bounded(s: dict[str, Any], now: float) -> dict[str, Any]:
    """A stored silence as shown; one saved before durations were bounded (an end of
    Infinity or year 33715) is shown ending at the bound, not as invalid JSON."""
    if not math.isfinite(s["ends_at"]) or s["ends_at"] > now + MAX_SILENCE_SECONDS:
        return {**s, "ends_at": now + MAX_SILENCE_SECONDS}
    return s


def add_silence(store: Store, match: dict[str, str], duration: float, comment: str, created_by: str,
                now: float | None = None) -> str:
    now = time.time() if now is None else now
    if not (math.isfinite(duration) and 0 < duration <= MAX_SILENCE_SECONDS):
        raise ValueError(f"silence duration {duration!r}: must be positive and at most {MAX_SILENCE_SECONDS:g}s")
    sid = uuid.uuid4().hex[:10]

    def change(items: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
        kept = [s for s in items if s["ends_at"] > now]
        kept.append({"id": sid, "match": match, "starts_at": now, "ends_at": now + duration, "comment": comment,
                     "created_by": created_by})
        return kept, sid

    return store.update_state(SILENCES_KEY, [], change)


def expire_silence(store: Store, silence_id: str, now: float | None = None) -> bool:
    now = time.time() if now is None else now

    def change(items: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
        hit = False
        for s in items:
            if s["id"] == silence_id and s["ends_at"] > now:
                s["ends_at"] = now
                hit = True
        return items, hit

    return store.update_state(SILENCES_KEY, [], change)
