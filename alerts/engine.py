"""The alert engine: findings → state machine → grouping/routing → delivery queue.

The state machine lives here: inactive → pending (`for`) → firing → resolved, with
hysteresis (`resolve_after` healthy evaluations in a row) so a flapping provider pages
once; alerts nothing evaluates any more are resolved (orphans), and a burn-rate page still
burning at ticket level stays the page. The engine composes the rest, one module each:
alerts/grouping.py (groups, reminders, escalation, muting), alerts/delivery.py (per-receiver
queues, retries, outbox), alerts/persistence.py (state in the store, windows rebuilt from
stored results) and alerts/silences.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import structlog

from alerts import persistence
from alerts import rules as rule_eval
from alerts.config import AlertsConfig
from alerts.delivery import QUEUE_SIZE, Delivery
from alerts.grouping import Group, Grouping
from alerts.history import TargetHistory
from alerts.model import (
    Alert,
    AlertMetrics,
    AlertTransition,
    Event,
    Finding,
    fingerprint,
)
from alerts.notifiers import Notifier, build
from alerts.silences import active as active_silences
from alerts.silences import add_silence, expire_silence, rfc3339
from core.aggregator import Aggregator
from core.loopslice import SLICE, LoopSlice
from core.result import ProbeResult
from core.store import Store
from detector.verdict import AnomalyVerdict

log = structlog.get_logger("llm_vitals.alerts")

EVAL_SLICE = SLICE  # seconds of rule evaluation per loop step


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
        self.verdicts: Mapping[tuple[str, str], AnomalyVerdict] = {}
        self.rules = list(cfg.rules) or (list(rule_eval.DEFAULT_RULES) if cfg.use_default_rules else [])
        self._objectives = frozenset(
            (r.objective.metric, r.objective.threshold) for r in self.rules
            if r.kind == "burn_rate" and r.objective is not None and r.objective.type == "latency")
        self.delivery = Delivery({r.name: build(r) for r in cfg.receivers}, metrics=metrics,
                                 persist=self._persist, queue_size=queue_size)
        self.grouping = Grouping(cfg, self.alerts, silences=self.silences, send=self.delivery.send,
                                 notifier=self.delivery.notifier)
        self._save_lock = asyncio.Lock()
        self._restoring = False
        self._load()

    @property
    def notifiers(self) -> dict[str, Notifier]:
        return self.delivery.notifiers

    @notifiers.setter
    def notifiers(self, notifiers: dict[str, Notifier]) -> None:
        self.delivery.notifiers = notifiers

    @property
    def groups(self) -> dict[str, Group]:
        return self.grouping.groups

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
        events = self.grouping.unmuted(now)  # before _advance: alerts firing from this evaluation on are not "unmuted"
        events += self._advance(findings, now)
        events += self._orphans(findings, now)
        self.grouping.route(events, now)
        self.grouping.flush(now)
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

    def _transition(self, a: Alert, state: str, now: float) -> None:
        log.info("alert_" + state, rule=a.rule, labels=a.labels, summary=a.summary, reason=a.reason)
        if self.on_transition is not None:
            self.on_transition(AlertTransition(datetime.fromtimestamp(now, UTC), a.rule, a.fingerprint, state,
                                               a.severity, dict(a.labels), a.value, a.summary))

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
    async def send_test(self, receiver: str) -> tuple[bool, str]:
        return await self.delivery.send_test(receiver)

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        await self.restore_windows()
        self.delivery.start()

    async def stop(self, deadline: float) -> None:
        await self.delivery.stop(deadline)
        await self._persist()

    # -- views ---------------------------------------------------------------------
    def firing(self) -> list[dict[str, Any]]:
        active = self.silences()

        def silenced_by(a: Alert) -> list[dict[str, Any]]:
            # every silence that matches the alert, with its end, wherever the alert is shown
            return [{"id": si["id"], "ends_at": rfc3339(si["ends_at"]), "comment": si.get("comment", "")}
                    for si in active if rule_eval.matches(a.labels, si["match"])]

        return [
            {"rule": a.rule, "labels": a.labels, "state": a.state, "severity": a.severity, "summary": a.summary,
             "reason": a.reason, "value": a.value, "since": a.firing_since or a.pending_since,
             "since_at": rfc3339(a.firing_since or a.pending_since),
             "fingerprint": a.fingerprint, "runbook_url": a.runbook_url,
             # why a firing alert is not told (silenced, maintenance, inhibited) as of the last
             # evaluation, else None: the status page shows a silenced target as such
             "muted": self.grouping.mutes.get(a.fingerprint) if a.state == "firing" else None,
             "silenced_by": silenced_by(a)}
            for a in sorted(self.alerts.values(), key=lambda x: (x.state != "firing", x.rule))
        ]

    # -- silences (config + store; the store ones come from the CLI and the API) ----
    def silences(self) -> list[dict[str, Any]]:
        return active_silences(self.cfg.silences, self.store, self.clock())

    def add_silence(self, match: dict[str, str], duration: float, comment: str = "", created_by: str = "api") -> str:
        return add_silence(self.store, match, duration, comment, created_by, self.clock())

    def expire_silence(self, silence_id: str) -> bool:
        return expire_silence(self.store, silence_id, self.clock())

    # -- persistence ---------------------------------------------------------------
    async def _persist(self) -> None:
        """Snapshot on the event loop (nothing changes under it), write in a thread; one
        write at a time, so an older snapshot never overwrites a newer one."""
        async with self._save_lock:
            state = persistence.snapshot(self.clock(), self.alerts.values(), self.groups.values(), self.histories,
                                         self.delivery.states(), self.delivery.outbox)
            await asyncio.to_thread(self.store.put_state, persistence.STATE_KEY, state)

    def _load(self) -> None:
        saved = persistence.Saved(self.store)
        self.alerts.update(saved.alerts())
        self.histories.update(saved.histories(self.clock(), self._objectives))
        if self.cfg.route is not None:
            for g in saved.groups(self.alerts, self.grouping.route_of):
                self.groups[g.key] = g
        self.delivery.restore(saved.notifiers(), saved.outbox())
        if self.alerts:
            log.info("alert_state_restored", alerts=len(self.alerts))

    async def restore_windows(self) -> None:
        """Error-rate and burn-rate windows rebuilt from the stored probe results, for the
        targets the saved state knows (alerts/persistence.py); evaluations wait for it."""
        if not self.histories:
            return
        self._restoring = True
        try:
            await persistence.restore_windows(self.store, self.rules, self._objectives, self.histories, self.clock())
        finally:
            self._restoring = False


def _fp(f: Finding) -> str:
    return fingerprint(f.rule, f.labels)
