"""Probe scheduling on apscheduler 3 (AsyncIOScheduler): one job per target.

Interval with jitter (around a fixed grid) so targets don't fire together; max_instances=1 so a target never
has two probes in flight (a skipped run is counted); a global concurrency limit; a
per-provider rate limit; daily budgets. The lag between a run's scheduled time and the
moment its probe really starts is measured, so a saturated daemon shows up instead of
silently probing less often (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from apscheduler.events import (
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from core.result import ProbeResult
from daemon.budget import BudgetTracker
from daemon.gridtrigger import GridIntervalTrigger
from daemon.metrics import Metrics
from probes.clients import ClientPool
from probes.runner import run_probe
from probes.target import ProbeTarget

log = structlog.get_logger("llm_vitals.scheduler")


@dataclass(frozen=True)
class Scheduled:
    target: ProbeTarget
    interval: float
    jitter: float  # fraction of the interval
    rate_per_minute: float | None = None


class ProviderRateLimit:
    """At most `per_minute` probe starts per provider, evenly spaced."""

    def __init__(self, per_minute: float) -> None:
        self.spacing = 60.0 / per_minute
        self._next = 0.0

    def reserve(self) -> float:
        """Seconds to wait before this start is allowed (the slot is taken now)."""
        now = time.monotonic()
        start = max(now, self._next)
        self._next = start + self.spacing
        return start - now


class ProbeScheduler:
    def __init__(
        self,
        clients: ClientPool,
        metrics: Metrics,
        on_result: Callable[[ProbeResult], None],
        budget: BudgetTracker,
        max_concurrency: int,
        degraded_interval: float | None = None,
    ) -> None:
        self._clients = clients
        self._metrics = metrics
        self._on_result = on_result
        self._budget = budget
        self._sem = asyncio.Semaphore(max_concurrency)
        self._degraded_interval = degraded_interval
        self._sched = AsyncIOScheduler(timezone=UTC)
        self._sched.add_listener(self._on_event, EVENT_JOB_SUBMITTED | EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
        self.jobs: dict[str, Scheduled] = {}
        self._scheduled_at: dict[str, float] = {}
        self._limits: dict[str, ProviderRateLimit] = {}
        self._degraded: set[str] = set()
        self._running: set[asyncio.Task[None]] = set()
        self.completed: set[str] = set()  # targets with at least one finished probe
        self.lag_samples: list[float] = []  # recent lags, for the capacity bench/status

    # -- jobs ----------------------------------------------------------------------
    def start(self) -> None:
        self._sched.start()

    def set_jobs(self, jobs: list[Scheduled]) -> dict[str, list[str]]:
        """Make the job set equal `jobs`; unchanged jobs keep their schedule."""
        wanted = {j.target.key: j for j in jobs}
        added, removed, changed = [], [], []
        for key in list(self.jobs):
            if key not in wanted:
                self._sched.remove_job(key)
                del self.jobs[key]
                self.completed.discard(key)
                removed.append(key)
        for key, job in wanted.items():
            old = self.jobs.get(key)
            if old == job:
                continue
            if old is not None:
                self._sched.remove_job(key)
                changed.append(key)
            else:
                added.append(key)
            self.jobs[key] = job
            if job.rate_per_minute:
                lim = self._limits.get(job.target.provider.name)
                if lim is None or abs(lim.spacing - 60 / job.rate_per_minute) > 1e-9:
                    self._limits[job.target.provider.name] = ProviderRateLimit(job.rate_per_minute)
            # Spread first runs over one interval so a thousand targets don't fire together
            # (jitter 0 means "on the dot": tests and deliberate lock-step probing).
            spread = job.interval if job.jitter else 0.0
            self._add(job, first_delay=random.uniform(0, spread) if old is None else job.interval)
        self._metrics.targets.set(len(self.jobs))
        return {"added": added, "removed": removed, "changed": changed}

    def _add(self, job: Scheduled, first_delay: float, interval: float | None = None) -> None:
        every = interval or job.interval
        first = datetime.now(UTC) + timedelta(seconds=first_delay)
        self._sched.add_job(
            self._run,
            # The grid starts at the first run; each later run is jittered within its own
            # slot, so the configured rate holds exactly (daemon/gridtrigger.py).
            GridIntervalTrigger(seconds=every, start_date=first,
                                jitter=every * job.jitter if job.jitter else None, timezone=UTC),
            # An explicit first run: a trigger start_date in the past (jobs added before the
            # scheduler starts) would make apscheduler wait a whole interval instead.
            next_run_time=first,
            args=[job.target.key],
            id=job.target.key,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(every)),
            replace_existing=True,
        )

    def _on_event(self, event: JobEvent) -> None:
        key = event.job_id
        job = self.jobs.get(key)
        if event.code == EVENT_JOB_SUBMITTED:
            times = getattr(event, "scheduled_run_times", None)
            if times:
                self._scheduled_at[key] = times[-1].timestamp()
        elif job is not None:
            reason = "overlap" if event.code == EVENT_JOB_MAX_INSTANCES else "missed"
            self._metrics.skipped.labels(*job.target.labels.values(), reason).inc()
            log.warning("probe_skipped", target=key, reason=reason)

    # -- one run -------------------------------------------------------------------
    async def _run(self, key: str) -> None:
        job = self.jobs.get(key)
        if job is None:
            return
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        labels = tuple(job.target.labels.values())
        try:
            spent = self._budget.exhausted(job.target.provider.name)
            if spent is not None:
                self._metrics.skipped.labels(*labels, f"budget_{spent}").inc()
                return
            async with self._sem:
                limit = self._limits.get(job.target.provider.name) if job.rate_per_minute else None
                if limit is not None:
                    wait = limit.reserve()
                    if wait > job.interval:
                        self._metrics.skipped.labels(*labels, "rate_limit").inc()
                        return
                    if wait > 0:
                        await asyncio.sleep(wait)
                scheduled = self._scheduled_at.pop(key, None)
                if scheduled is not None:
                    lag = max(0.0, time.time() - scheduled)
                    self._metrics.scheduler_lag.observe(lag)
                    self.lag_samples.append(lag)
                    if len(self.lag_samples) > 10_000:
                        del self.lag_samples[:5_000]
                self._metrics.in_flight.inc()
                # how often this target runs now: whether its client can reuse a connection
                every = self._degraded_interval if key in self._degraded and self._degraded_interval else job.interval
                try:
                    result = await run_probe(self._clients.client_for(key, every), job.target)
                finally:
                    self._metrics.in_flight.dec()
            self.completed.add(key)
            self._on_result(result)
            self._adapt(job, result)
        finally:
            self._running.discard(task)

    def _adapt(self, job: Scheduled, result: ProbeResult) -> None:
        """Probe a degraded target more often, until it is healthy again."""
        if self._degraded_interval is None or self._degraded_interval >= job.interval:
            return
        key = job.target.key
        if not result.ok and key not in self._degraded:
            self._degraded.add(key)
            self._add(job, first_delay=self._degraded_interval, interval=self._degraded_interval)
            log.info("probe_interval_degraded", target=key, interval=self._degraded_interval)
        elif result.ok and key in self._degraded:
            self._degraded.discard(key)
            self._add(job, first_delay=job.interval)
            log.info("probe_interval_restored", target=key, interval=job.interval)

    # -- shutdown ------------------------------------------------------------------
    def pause(self) -> None:
        """Stop starting probes; running ones go on (shutdown() would cancel them)."""
        if self._sched.running:
            self._sched.pause()

    def shutdown(self) -> None:
        if self._sched.running:
            self._sched.shutdown(wait=False)

    async def drain(self, deadline: float) -> int:
        """Wait for in-flight probes up to `deadline` seconds; cancel the rest. Returns cancelled."""
        pending = set(self._running)
        if not pending:
            return 0
        _done, left = await asyncio.wait(pending, timeout=deadline)
        for t in left:
            t.cancel()
        if left:
            await asyncio.wait(left, timeout=1.0)
        return len(left)

    @property
    def running(self) -> bool:
        return bool(self._sched.running)

    def in_flight(self) -> int:
        return len(self._running)
