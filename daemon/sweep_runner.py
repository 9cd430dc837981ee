"""Scheduled capacity sweeps in the daemon (`sweeps:`): cron triggers, one sweep at a time.

- One at a time: a sweep loads its target on purpose; two at once would measure each other.
  A run that comes due while the *same* sweep is still running or waiting is skipped and
  counted (`llm_vitals_sweeps_total{outcome="skipped_overlap"}`), as cron with a lock or a
  Kubernetes CronJob with `concurrencyPolicy: Forbid` does: queueing it would stack runs
  behind a slow one. A *different* sweep due meanwhile waits its turn (two sweeps written
  for 03:00 both run), but at most its `max_delay` late; later it is skipped
  (`skipped_late`), so a night's sweep does not spill into the day.
- Never starving the probes: a sweep's streams run in a child process at a lower CPU
  priority (daemon/sweep_worker.py; on the daemon's loop they pushed the probes' schedule
  lag p50 from 1.4 ms to 86 ms), with their own connections and none of the probes'
  `scheduler.max_concurrency` slots; its results go to the sweep's record only (the
  target's own series, detector and alerts see only its regular probes).
- Budgets: a sweep may spend what the daily budgets leave after today's spending *and* the
  regular probes' projected spending until the end of the (UTC) day, so a sweep can never
  pause the probes for budget; a sweep that would pass that is refused (recorded, logged,
  counted). What it spends is added to the day's budget state. 429s back off (daemon/sweep.py).
- Shutdown cancels a running sweep; what it measured is recorded as `cancelled`.
"""

from __future__ import annotations

import asyncio
import json
import math
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from core.result import ProbeResult
from daemon.budget import BudgetTracker, probe_cost
from daemon.config import Settings
from daemon.metrics import Metrics
from daemon.sweep import Allowance, Level, Plan, estimate, report, request_tokens
from daemon.sweep_config import SweepConfig
from daemon.sweep_store import SweepRun, SweepStore
from probes.target import ProbeTarget

log = structlog.get_logger("llm_vitals.sweeps")

WORKER_LINE_LIMIT = 4 * 1024 * 1024  # one finished stream's record per line
WORKER_STOP_SECONDS = 2.0  # a cancelled worker reports its last level within this
MISFIRE_GRACE = 60  # seconds: a run the loop fired this late still counts; a missed night is not made up

Publish = Callable[[SweepRun], None]


def outcome_of(levels: list[Level]) -> str:
    if not any(r.ok for lv in levels for r in lv.results):
        return "failed"
    if any(lv.stopped for lv in levels):
        return "partial"
    return "ok"


def probe_reserve(settings: Settings, targets: list[ProbeTarget], provider: str,
                  now: float | None = None) -> tuple[int, float, int, float]:
    """What the regular probes will spend at most until the end of the UTC day: (all targets'
    tokens, cost, `provider`'s tokens, cost). Kept out of a sweep's allowance."""
    now = time.time() if now is None else now
    day = datetime.fromtimestamp(now, UTC)
    midnight = (day + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    left = max(0.0, midnight.timestamp() - now)
    g_tok = p_tok = 0
    g_cost = p_cost = 0.0
    for t in targets:
        runs = math.ceil(left / max(settings.interval_for(t.provider.name, t.model), 1e-3))
        inp, out = request_tokens(t)
        price = settings.price_for(t.provider.name, t.model)
        cost = 0.0 if price is None else runs * (inp * price.input_per_mtok + out * price.output_per_mtok) / 1e6
        g_tok += runs * (inp + out)
        g_cost += cost
        if t.provider.name == provider:
            p_tok += runs * (inp + out)
            p_cost += cost
    return g_tok, g_cost, p_tok, p_cost


class SweepRunner:
    def __init__(self, sweep_store: SweepStore, metrics: Metrics, budget: BudgetTracker, publish: Publish) -> None:
        self._store = sweep_store
        self._metrics = metrics
        self._budget = budget
        self._publish = publish
        self._sched = AsyncIOScheduler(timezone=UTC)
        self._settings: Settings | None = None
        self._targets: list[ProbeTarget] = []
        self.sweeps: dict[str, SweepConfig] = {}
        self._queue: deque[tuple[str, float]] = deque()  # (name, due at unix)
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._current: asyncio.Task[None] | None = None
        self.running: str | None = None
        self.running_since: float | None = None
        self.worker_pid: int | None = None
        self.levels: list[Level] = []  # the running sweep's, as its worker reports them
        self.simulator_url: str | None = None  # the daemon's bundled simulator, once it runs

    # -- configuration -----------------------------------------------------------------
    def configure(self, settings: Settings, targets: list[ProbeTarget]) -> None:
        """The sweeps of this replica's targets (a sharded fleet sweeps each target once)."""
        self._settings = settings
        self._targets = targets
        owned = {t.key for t in targets}
        wanted = {w.name: w for w in settings.sweeps if settings.sweep_key(w) in owned}
        for name in list(self.sweeps):
            if name not in wanted:
                self._sched.remove_job(name)
                del self.sweeps[name]
                self._metrics.forget_sweep(name)
        for name, cfg in wanted.items():
            if self.sweeps.get(name) == cfg:
                continue
            self.sweeps[name] = cfg
            self._sched.add_job(self._fire, cfg.trigger(), args=[name], id=name, replace_existing=True,
                                max_instances=1, coalesce=True, misfire_grace_time=MISFIRE_GRACE)

    def start(self) -> None:
        self._sched.start()
        self._worker = asyncio.create_task(self._work(), name="sweeps")

    # -- due runs ------------------------------------------------------------------------
    async def _fire(self, name: str) -> None:
        """The cron trigger (a coroutine: apscheduler runs it on the loop, not in a thread)."""
        self.request(name)

    def request(self, name: str, due: float | None = None) -> str:
        """A run of `name` is due: "queued", or why not ("unknown", "skipped_overlap")."""
        if name not in self.sweeps:
            return "unknown"
        if self.running == name or any(n == name for n, _ in self._queue):
            self._metrics.sweeps.labels(name, "skipped_overlap").inc()
            log.warning("sweep_skipped", sweep=name, reason="overlap",
                        detail="the previous run of this sweep is still running or waiting")
            return "skipped_overlap"
        self._queue.append((name, time.time() if due is None else due))
        self._wake.set()
        return "queued"

    async def _work(self) -> None:
        while True:
            while not self._queue:
                self._wake.clear()
                await self._wake.wait()
            name, due = self._queue[0]
            self._current = asyncio.create_task(self._run(name, due), name=f"sweep-{name}")
            try:
                await asyncio.shield(self._current)
            except asyncio.CancelledError:
                if self._current.done():
                    continue  # the sweep itself was cancelled (stop()); it recorded what it had
                raise
            except Exception:
                log.exception("sweep_failed", sweep=name)
            finally:
                if self._queue and self._queue[0] == (name, due):
                    self._queue.popleft()

    async def _run(self, name: str, due: float) -> None:
        cfg = self.sweeps.get(name)
        settings = self._settings
        if cfg is None or settings is None:
            return  # removed by a reload while it waited
        late = time.time() - due
        if late > cfg.max_delay:
            self._metrics.sweeps.labels(name, "skipped_late").inc()
            log.warning("sweep_skipped", sweep=name, reason="late", late_seconds=round(late, 1),
                        max_delay=cfg.max_delay, detail="it waited behind other sweeps past its max_delay")
            return
        key = settings.sweep_key(cfg)
        target = next((t for t in self._targets if t.key == key), None)
        if target is None:
            return  # its target left this replica (a reload) while it waited
        plan = Plan(target=target, concurrency=tuple(cfg.concurrency),
                    prompt_tokens=tuple(cfg.prompt_tokens) if cfg.prompt_tokens else (None,),
                    requests=cfg.requests, duration=cfg.duration)
        est = estimate(settings, plan)
        provider = target.provider.name
        self._budget.exhausted()  # rolls the day over
        state = self._budget.state()
        spent = {"tokens": state["tokens"], "cost": state["cost"],
                 "providers": {k: (int(v[0]), float(v[1])) for k, v in self.budget_providers().items()}}
        reserve = probe_reserve(settings, self._targets, provider)
        allowance = Allowance.left(settings, provider, spent, reserve,
                                   note=f", less {reserve[0]} tokens kept for the regular probes until midnight UTC")
        started = time.time()
        why = allowance.refuses(est)
        if why is not None:
            log.warning("sweep_refused", sweep=name, target=key, reason=why)
            self._record(SweepRun(name, key, started, started, "refused",
                                  {**report(plan, [], est), "reason": why}))
            return
        levels: list[Level] = []
        self.levels = levels
        self.running, self.running_since = name, started
        self._metrics.sweep_running.set(1)
        log.info("sweep_started", sweep=name, target=key, plan=est.describe())
        job = {"settings": settings.model_dump(mode="json", by_alias=True), "simulator_url": self.simulator_url,
               "sweep": name, "allowance": {"tokens": allowance.tokens, "cost_usd": allowance.cost_usd,
                                            "where": allowance.where}}
        try:
            rc = await self._in_child(job, levels, settings)
        except asyncio.CancelledError:
            self._record(SweepRun(name, key, started, time.time(), "cancelled", report(plan, levels, est)))
            raise
        finally:
            self.running = self.running_since = None
            self._metrics.sweep_running.set(0)
        outcome = outcome_of(levels)
        if rc != 0:
            log.error("sweep_worker_failed", sweep=name, exit_code=rc)
            outcome = "failed" if outcome == "failed" else "partial"
        self._record(SweepRun(name, key, started, time.time(), outcome, report(plan, levels, est)))

    async def _in_child(self, job: dict[str, Any], levels: list[Level], settings: Settings) -> int:
        """Run the sweep in `python -m daemon.sweep_worker` (its own process, niced: see there),
        rebuilding its levels here from what it reports, and counting its spending as it goes."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "daemon.sweep_worker", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, limit=WORKER_LINE_LIMIT)
        assert proc.stdin is not None and proc.stdout is not None
        self.worker_pid = proc.pid
        proc.stdin.write(json.dumps(job).encode())
        await proc.stdin.drain()
        proc.stdin.close()
        stdout = proc.stdout

        async def read_all() -> None:
            async for line in stdout:
                self._take(line, levels, settings)

        try:
            await read_all()
            return await proc.wait()
        except asyncio.CancelledError:
            # stop it, and keep what it still reports (the level in progress ends with its wall time)
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(read_all(), WORKER_STOP_SECONDS)
                await asyncio.wait_for(proc.wait(), WORKER_STOP_SECONDS)
            except (TimeoutError, asyncio.CancelledError, ValueError):
                pass
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            raise
        finally:
            self.worker_pid = None

    def _take(self, line: bytes, levels: list[Level], settings: Settings) -> None:
        try:
            msg = json.loads(line)
        except ValueError:
            log.warning("sweep_worker_bad_line", line=line[:200].decode(errors="replace"))
            return
        if "level" in msg:
            levels.append(Level(int(msg["level"]["concurrency"]), msg["level"]["prompt_tokens"]))
        elif "result" in msg and levels:
            r = ProbeResult.from_record(msg["result"])
            levels[-1].results.append(r)
            self._budget.add(r, probe_cost(settings, r))
        elif "end" in msg and levels:
            end, lv = msg["end"], levels[-1]
            lv.wall, lv.backoff = float(end["wall"]), float(end["backoff"])
            lv.retry_after_max, lv.stopped = end["retry_after_max"], end["stopped"]

    def budget_providers(self) -> dict[str, list[float]]:
        return dict(self._budget.by_provider)

    def _record(self, run: SweepRun) -> None:
        """Store, metrics, sinks, log. Synchronous on purpose: at shutdown (cancelled) the loop
        is going away; a row is a few hundred bytes once a night."""
        assert self._settings is not None
        try:
            self._store.add(run)
        except Exception:
            log.exception("sweep_store_failed", sweep=run.name)
        rep = run.report
        if run.name in self.sweeps:  # not removed by a reload while it ran (no ghost series)
            self._metrics.sweep_done(run.name, run.target, run.started_at, run.outcome, rep.get("levels", []),
                                     rep.get("saturation"))
        try:
            self._publish(run)
        except Exception:
            log.exception("sweep_publish_failed", sweep=run.name)
        sat = rep.get("saturation")
        log.info("sweep_finished", sweep=run.name, target=run.target, outcome=run.outcome,
                 seconds=round(run.finished_at - run.started_at, 2), levels=len(rep.get("levels", [])),
                 saturation=None if sat is None else sat["concurrency"])

    # -- state and shutdown ----------------------------------------------------------------
    def state(self) -> list[dict[str, Any]]:
        out = []
        queued = [n for n, _ in self._queue if n != self.running]
        for name, cfg in self.sweeps.items():
            job = self._sched.get_job(name) if self._sched.running else None
            nxt = getattr(job, "next_run_time", None) if job is not None else None
            out.append({
                "name": name, "target": self._settings.sweep_key(cfg) if self._settings else cfg.target,
                "schedule": cfg.schedule, "timezone": cfg.timezone, "concurrency": cfg.concurrency,
                "prompt_tokens": cfg.prompt_tokens, "requests": cfg.requests, "duration": cfg.duration,
                "next_run": nxt.timestamp() if nxt is not None else None,
                "running": self.running == name, "queued": name in queued,
            })
        return out

    async def stop(self, deadline: float = 5.0) -> None:
        """Stop firing, cancel a running sweep (it records what it measured), end the worker."""
        if self._sched.running:
            self._sched.shutdown(wait=False)
        current, name = self._current, self.running
        if current is not None and not current.done():
            current.cancel()
            await asyncio.wait({current}, timeout=deadline)
            if name is not None:
                log.warning("sweep_cancelled_at_shutdown", sweep=name)
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.wait({self._worker}, timeout=1.0)

