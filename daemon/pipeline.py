"""The probe pipeline, in one place. A result goes one way:

    ProbeScheduler ──put──▶ Collector (bounded; drops the oldest, counted)
                              │ in this order, on the loop, each must return at once
                              ├─▶ bookkeeping   Prometheus series, budget, aggregator, last result, log line
                              ├─▶ detector      per-series state (verdicts are read by evaluate, not pushed)
                              ├─▶ alerts        rule histories
                              └─▶ sinks         sqlite, influxdb, otlp (each keeps its own queue)
    AlertEngine ──transition──▶ every sink's submit_alert

Results of a target that a reload removed while its probe was in flight are still stored by
the sinks, but revive no series in the bookkeeping, detector or alerts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

import structlog

from alerts.model import AlertTransition
from core.aggregator import Aggregator
from core.result import ProbeResult
from daemon.budget import BudgetTracker
from daemon.collector import Collector
from daemon.metrics import Metrics

if TYPE_CHECKING:
    from daemon.sinks.base import Sink
    from daemon.sweep_store import SweepRun

log = structlog.get_logger("llm_vitals.daemon")


class Consumer(Protocol):
    """Anything that sees every probe result. `observe` must not block or await: slow work
    belongs behind the consumer's own bounded queue."""

    def observe(self, result: ProbeResult) -> None: ...


class Bookkeeping:
    """What every result updates first: the Prometheus series, the budget, the aggregator's
    windows, the last result per target (status page, readiness) and one log line."""

    def __init__(self, metrics: Metrics, budget: BudgetTracker, aggregator: Aggregator,
                 cost: Callable[[ProbeResult], float | None]) -> None:
        self.metrics = metrics
        self.budget = budget
        self.aggregator = aggregator
        self.cost = cost
        self.last: dict[str, ProbeResult] = {}

    def observe(self, r: ProbeResult) -> None:
        cost = self.cost(r)
        self.metrics.observe(r, cost)
        self.budget.add(r, cost)
        self.aggregator.observe(r)
        self.last[r.target] = r
        if not r.ok:
            log.warning("probe_failed", target=r.target, outcome=r.outcome.value, error=r.error,
                        status_code=r.status_code, request_id=r.request_id)
        else:
            log.debug("probe_ok", target=r.target, ttft=r.ttft, e2e=r.e2e)
        if r.usage_clamped:
            log.warning("probe_usage_clamped", target=r.target, input_tokens=r.input_tokens,
                        output_tokens=r.output_tokens, request_id=r.request_id)

    def forget(self, gone: Iterable[str]) -> None:
        for key in gone:
            lab = self.aggregator.labels.get(key)
            if lab is not None:
                self.metrics.forget(lab)
            self.last.pop(key, None)


class _CurrentOnly:
    """A consumer that ignores results of targets no longer configured."""

    def __init__(self, consumer: Consumer, current: Callable[[str], bool]) -> None:
        self._consumer = consumer
        self._current = current

    def observe(self, r: ProbeResult) -> None:
        if self._current(r.target):
            self._consumer.observe(r)


class Pipeline:
    def __init__(self, collector: Collector, current: Callable[[str], bool]) -> None:
        self.collector = collector
        self._current = current
        self._sinks: list[Sink] = []

    def wire(self, bookkeeping: Consumer, detector: Consumer | None, alerts: Consumer | None,
             sinks: Iterable[Sink]) -> None:
        """(Re)subscribe every consumer, in the pipeline's order; called at start and on reload."""
        c = self.collector
        c.clear()
        c.subscribe("core", _CurrentOnly(bookkeeping, self._current).observe)
        if detector is not None:
            c.subscribe("detector", _CurrentOnly(detector, self._current).observe)
        if alerts is not None:
            c.subscribe("alerts", _CurrentOnly(alerts, self._current).observe)
        self._sinks = list(sinks)
        for sink in self._sinks:
            c.subscribe(sink.name, sink.observe)

    def publish_sweep(self, run: SweepRun, region: str) -> None:
        """A finished scheduled sweep, to every sink (InfluxDB writes measurement `sweep`)."""
        levels = run.report.get("levels")
        if not levels:
            return
        for sink in self._sinks:
            try:
                sink.submit_sweep(run.name, run.target, region, run.started_at, run.outcome, levels,
                                  run.report.get("saturation"))
            except Exception:
                log.exception("sink_sweep_submit_failed", sink=sink.name)

    def alert_transition(self, t: AlertTransition) -> None:
        """The alert engine's transitions, to every sink (one failing sink spoils none other)."""
        for sink in self._sinks:
            try:
                sink.submit_alert(t)
            except Exception:
                log.exception("sink_alert_submit_failed", sink=sink.name)
