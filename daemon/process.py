"""The always-on daemon: wiring, lifecycle (start, SIGHUP reload, SIGTERM drain) and state."""

from __future__ import annotations

import asyncio
import math
import signal
import sqlite3
import sys
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

import structlog
from aiohttp import web
from prometheus_client import disable_created_metrics

from alerts.engine import AlertEngine
from core.aggregator import Aggregator
from core.secrets import read_secret
from core.store import Store, storage_problem
from daemon import logs, status
from daemon.budget import BudgetTracker, probe_cost
from daemon.collector import Collector
from daemon.config import ConfigError, Settings, load_settings, require_targets
from daemon.gcpolicy import GcPolicy
from daemon.http_api import build_app
from daemon.metrics import Metrics, QuantileCollector, exported
from daemon.pipeline import Bookkeeping, Pipeline
from daemon.scheduler import ProbeScheduler, Scheduled
from daemon.sdnotify import Notifier
from daemon.selfmon import LoopMonitor
from daemon.simulator_process import SimulatorStartError, simulator_process
from daemon.sinks.base import Sink
from daemon.sinks.sqlite_results import SQLiteResultSink
from daemon.sweep_runner import SweepRunner
from daemon.sweep_store import SweepRun, SweepStore
from detector import core_is_compiled
from detector.service import Detector
from detector.verdict import AnomalyVerdict
from probes import registry
from probes.clients import ClientPool
from probes.target import ProbeTarget

log = structlog.get_logger("llm_vitals.daemon")

RESTORE_SECONDS = 3600.0
SAVE_EVERY = 30.0
SHUTDOWN_DEADLINE = 20.0


class Daemon:
    def __init__(self, settings: Settings, config_path: str | None, source: str) -> None:
        self.settings = settings
        self.config_path = config_path
        self.source = source
        # `_created` samples double every counter and histogram series for a value nobody
        # queries (Prometheus ignores them unless created-timestamp ingestion is on).
        disable_created_metrics()
        self.metrics = Metrics(detail=settings.metrics.detail)
        self.aggregator = Aggregator()
        if exported("quantiles", settings.metrics.detail):
            self.metrics.registry.register(QuantileCollector(self.aggregator.iter_snapshot, self.aggregator.labels.get))
        self.store = Store(settings.storage.path)
        self.sweep_store = SweepStore(self.store)
        self.collector = Collector(self.metrics, settings.scheduler.collector_queue)
        self.budget = BudgetTracker(settings.budgets, self.metrics, settings.provider_budgets())
        self.loop_monitor = LoopMonitor(self.metrics)
        self.sweeps = SweepRunner(self.sweep_store, self.metrics, self.budget, self._publish_sweep)
        self._sweeps_pruned = float("-inf")
        self.gc_policy = GcPolicy()
        self.bookkeeping = Bookkeeping(self.metrics, self.budget, self.aggregator,
                                       lambda r: probe_cost(self.settings, r))
        self.pipeline = Pipeline(self.collector, lambda key: key in self._target_keys)
        self.sinks: dict[str, Sink] = {}
        self.detector: Detector | None = None
        self.alerts: AlertEngine | None = None
        self.verdicts: dict[tuple[str, str], AnomalyVerdict] = {}
        self.auth_token: str | None = None
        self.simulator_url: str | None = None
        self.started_at = datetime.now(UTC)
        self.scheduler: ProbeScheduler | None = None
        self.clients = ClientPool()
        self.systemd = Notifier()
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.targets: list[ProbeTarget] = []
        self._target_keys: set[str] = set()

    # -- wiring (daemon/pipeline.py draws the flow) ----------------------------------
    def _wire(self) -> None:
        self.pipeline.wire(self.bookkeeping, self.detector, self.alerts, self.sinks.values())

    def _publish_sweep(self, run: SweepRun) -> None:
        """A sweep run to the sinks (InfluxDB measurement `sweep`)."""
        self.pipeline.publish_sweep(run, self.settings.region)

    async def _make_detector(self, settings: Settings) -> Detector | None:
        """The detector with every target's saved state, read a target per loop step (in a
        running daemon the probes go on meanwhile); it judges only once it holds every
        series (a half-loaded one would see warming series)."""
        if not settings.detector.enabled:
            return None
        det = Detector(settings.detector, store=self.store)
        try:
            await det.load_async()
        except Exception:
            log.exception("detector_restore_failed")
        return det

    def _make_alerts(self, settings: Settings) -> AlertEngine | None:
        if not settings.alerts.enabled:
            return None
        for rule in settings.alerts.rules:
            if rule.kind == "threshold" and rule.metric is not None:
                self.aggregator.require(rule.metric, rule.window)
        return AlertEngine(
            settings.alerts,
            store=self.store,
            stats=self.aggregator,
            metrics=self.metrics,
            region=settings.region,
            on_transition=self.pipeline.alert_transition,
        )

    def _make_influx(self, settings: Settings) -> Sink | None:
        if settings.influxdb is None:
            return None
        # Imported only when configured: influxdb_client (with the numpy, reactivex and
        # dateutil it pulls in) is ~25 MB of RSS a daemon without InfluxDB never uses.
        from daemon.sinks.influx import InfluxSink

        return InfluxSink(settings.influxdb, self.store, self.metrics)

    def _make_otlp(self, settings: Settings) -> Sink | None:
        cfg = settings.otlp
        if cfg is None:
            return None
        # Imported only when configured: the OpenTelemetry SDK and its protobuf exporters
        # are ~12 MB of RSS.
        from daemon.sinks.otlp import OtlpSink, parse_headers

        secret = read_secret(cfg.headers_env, cfg.headers_file, "otlp.headers")
        headers = parse_headers(secret.get()) if secret is not None else None
        sim = self.simulator_url or ""
        providers = {p.name: (p.kind, p.base_url.replace("{simulator}", sim)) for p in settings.providers}
        return OtlpSink(cfg, providers, self.metrics, settings.region, headers)

    def _jobs(self, settings: Settings, targets: list[ProbeTarget]) -> list[Scheduled]:
        rates = {p.name: p.rate_limit_per_minute for p in settings.providers}
        return [
            Scheduled(
                target=t,
                interval=settings.interval_for(t.provider.name, t.model),
                jitter=settings.defaults.jitter,
                rate_per_minute=rates.get(t.provider.name),
            )
            for t in targets
        ]

    # -- restore -------------------------------------------------------------------
    def _restore(self) -> None:
        now = time.time()
        results = self.store.results_since(now - RESTORE_SECONDS)
        keys = {t.key for t in self.targets}
        for r in results:
            if r.target in keys:
                self.aggregator.observe(r, at=r.started_at.timestamp() + (r.e2e or 0.0))
                self.bookkeeping.last[r.target] = r
        self.budget.restore(self.store.get_state("budget"))
        if results:
            log.info("state_restored", results=len(results), targets=len({r.target for r in results}))

    def _save_state(self, deadline: float) -> None:
        """At shutdown (nothing else runs), the detector's stalest targets first until the
        deadline (time.monotonic())."""
        self.store.put_state("budget", self.budget.state())
        if self.detector is not None:
            left = self.detector.save(deadline)
            if left:
                # they keep the state the rolling save last wrote for them
                log.warning("detector_state_not_saved_at_shutdown", targets=left)

    async def _save_state_async(self) -> None:
        """While running: state is taken on the loop, SQLite written in a thread."""
        await asyncio.to_thread(self.store.put_state, "budget", self.budget.state())
        if time.monotonic() - self._sweeps_pruned > 3600:
            self._sweeps_pruned = time.monotonic()
            await asyncio.to_thread(self.sweep_store.prune, self.settings.storage.sweep_retention)
        if self.detector is not None:
            await self.detector.save_async()

    # -- periodic work -------------------------------------------------------------
    async def _evaluate_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.alerts.evaluation_interval)
            try:
                await self._evaluate_once()
            except Exception:
                log.exception("evaluation_failed")

    async def _evaluate_once(self) -> None:
        if self.detector is not None:
            self.verdicts = await self.detector.evaluate_async()
            self.detector.export_scores(self.verdicts, self.metrics.anomaly)
        if self.alerts is not None:
            self.alerts.set_verdicts(self.verdicts)
            await self.alerts.evaluate()

    async def _gc_loop(self) -> None:
        self.gc_policy.install()
        try:
            while True:
                await asyncio.sleep(5.0)
                self.gc_policy.tick(status.readiness(self)[0])
        finally:
            self.gc_policy.uninstall()

    async def _save_loop(self) -> None:
        while True:
            await asyncio.sleep(SAVE_EVERY)
            try:
                await self._save_state_async()
            except Exception:
                log.exception("state_save_failed")

    def refresh_gauges(self) -> None:
        self.metrics.queue_depth.labels("collector").set(self.collector.depth())
        for name, sink in self.sinks.items():
            self.metrics.queue_depth.labels(name).set(sink.depth())

    # -- endpoints (daemon/status.py builds health, readiness and status) ------------
    def target_keys(self) -> list[str]:
        return [t.key for t in self.targets]

    # -- lifecycle -----------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload.set)
        s = self.settings
        self.auth_token = (
            t.get() if (t := read_secret(s.http.auth_token_env, s.http.auth_token_file, "http.auth_token")) else None
        )
        async with AsyncExitStack() as stack:
            if s.simulator.enabled:
                try:
                    self.simulator_url = await stack.enter_async_context(simulator_process(s.simulator))
                except SimulatorStartError as exc:
                    log.error("simulator_start_failed", error=str(exc))
                    return 1
                log.info("simulator_started", url=self.simulator_url)
            self.targets = s.owned_targets(self.simulator_url)
            self._target_keys = {t.key for t in self.targets}
            registry.prepare(t.provider.kind for t in self.targets)
            clients = ClientPool()
            stack.push_async_callback(clients.aclose)
            self.clients = clients
            self.loop_monitor.start()
            self._restore()
            self.detector = await self._make_detector(s)
            self.alerts = self._make_alerts(s)
            self.sinks["sqlite"] = SQLiteResultSink(self.store, self.metrics, s.storage.retention)
            influx = self._make_influx(s)
            if influx is not None:
                self.sinks["influxdb"] = influx
            otlp = self._make_otlp(s)
            if otlp is not None:
                self.sinks["otlp"] = otlp
            for sink in self.sinks.values():
                await sink.start()
            if self.alerts is not None:
                await self.alerts.start()
            self._wire()
            self.collector.start()

            runner = web.AppRunner(build_app(self), access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, s.http.host, s.http.port)
            try:
                await site.start()
            except OSError as exc:
                log.error("http_listen_failed", listen=s.http.listen, error=exc.strerror)
                await runner.cleanup()
                return 1

            self.scheduler = ProbeScheduler(
                clients, self.metrics, self.collector.put, self.budget,
                s.scheduler.max_concurrency, s.scheduler.degraded_interval,
            )
            self.scheduler.set_jobs(self._jobs(s, self.targets))
            self.scheduler.start()
            self.sweeps.simulator_url = self.simulator_url
            self.sweeps.configure(s, self.targets)
            self.sweeps.start()
            self._tasks = [
                asyncio.create_task(self._evaluate_loop(), name="evaluate"),
                asyncio.create_task(self._save_loop(), name="save-state"),
                asyncio.create_task(self._gc_loop(), name="gc-policy"),
                asyncio.create_task(self.systemd.watchdog(), name="systemd-watchdog"),
            ]
            log.info("daemon_started", config=self.source, listen=s.http.listen, targets=len(self.targets),
                     region=s.region, url=f"http://{s.http.listen}/",
                     # Python where the install could not compile it: the same verdicts, twice the CPU
                     detector_compiled=core_is_compiled())
            # State restored, sinks started, HTTP listening, probes scheduled: Type=notify's READY.
            self.systemd.ready(f"probing {len(self.targets)} targets")
            while not self._stop.is_set():
                reload_wait = asyncio.create_task(self._reload.wait())
                stop_wait = asyncio.create_task(self._stop.wait())
                await asyncio.wait({reload_wait, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                reload_wait.cancel()
                stop_wait.cancel()
                if self._reload.is_set() and not self._stop.is_set():
                    self._reload.clear()
                    self.systemd.reloading()
                    await self.reload()
                    self.systemd.ready(f"probing {len(self.targets)} targets")
            await self._shutdown(runner)
        return 0

    async def reload(self) -> None:
        path = self.config_path
        try:
            new = load_settings(path if path is not None else self.source)
            require_targets(new, self.source)
            problems = new.check_secrets()
            if problems:
                raise ConfigError([f"{self.source}: {p}" for p in problems])
            targets = new.owned_targets(self.simulator_url if new.simulator.enabled else None)
            registry.prepare(t.provider.kind for t in targets)
        except ConfigError as exc:
            self.metrics.config_reloads.labels("rejected").inc()
            log.error("config_reload_rejected", errors=exc.lines, keeping="previous config")
            return
        except ValueError as exc:
            self.metrics.config_reloads.labels("rejected").inc()
            log.error("config_reload_rejected", errors=[str(exc)], keeping="previous config")
            return
        old = self.settings
        if new.http != old.http or new.storage != old.storage or new.simulator != old.simulator:
            log.warning("config_reload_needs_restart", keys="http/storage/simulator changes take effect on restart")
        self.settings = new
        self.targets = targets
        self._target_keys = {t.key for t in targets}
        assert self.scheduler is not None
        diff = self.scheduler.set_jobs(self._jobs(new, targets))
        self.sweeps.configure(new, targets)
        keep = {t.key for t in targets}
        self.bookkeeping.forget(diff["removed"])
        self.aggregator.forget(keep)
        await self.clients.retain(keep)
        if self.detector is not None:
            self.detector.forget(keep)
        self.budget.configure(new.budgets, new.provider_budgets())
        if new.metrics != old.metrics:
            log.warning("metrics_detail_needs_restart", running=old.metrics.detail, configured=new.metrics.detail)
        if new.detector != old.detector:
            # The series carry over in memory, a series per loop step (through the store, a
            # synchronous save and load of 1,000 week-old targets froze probing for minutes).
            # The old detector judges until the new one holds every series: a half-filled
            # one would see warming series and resolve their alerts.
            if self.detector is not None and new.detector.enabled:
                adopted = Detector(new.detector, store=self.store)
                await adopted.adopt_async(self.detector)
                self.detector = adopted
            elif self.detector is not None:
                await self.detector.save_async(budget_s=math.inf, min_age=0.0)  # off: kept for when it is back on
                self.detector = None
            else:
                self.detector = await self._make_detector(new)
        if new.alerts != old.alerts:
            if self.alerts is not None:
                await self.alerts.stop(5.0)
            self.alerts = self._make_alerts(new)
            if self.alerts is not None:
                await self.alerts.start()
        elif self.alerts is not None:
            self.alerts.targets_known(keep)
        if new.influxdb != old.influxdb:
            old_sink = self.sinks.pop("influxdb", None)
            if old_sink is not None:
                await old_sink.stop(5.0)
            sink = self._make_influx(new)
            if sink is not None:
                self.sinks["influxdb"] = sink
                await sink.start()
        if new.otlp != old.otlp or new.providers != old.providers or new.region != old.region:
            old_otlp = self.sinks.pop("otlp", None)
            if old_otlp is not None:
                await old_otlp.stop(5.0)
            otlp = self._make_otlp(new)
            if otlp is not None:
                self.sinks["otlp"] = otlp
                await otlp.start()
        self._wire()
        self.gc_policy.targets_changed()
        self.metrics.config_reloads.labels("applied").inc()
        log.info("config_reloaded", **{k: len(v) for k, v in diff.items()}, targets=len(targets))

    async def _shutdown(self, runner: web.AppRunner) -> None:
        self.systemd.stopping()
        log.info("daemon_stopping", in_flight=self.scheduler.in_flight() if self.scheduler else 0)
        deadline = time.monotonic() + SHUTDOWN_DEADLINE
        await self.sweeps.stop()  # first: its streams are cancelled, not drained (what it measured is kept)
        if self.scheduler is not None:
            self.scheduler.pause()
            cancelled = await self.scheduler.drain(min(self.settings.defaults.timeout, SHUTDOWN_DEADLINE / 2))
            if cancelled:
                log.warning("probes_cancelled_at_shutdown", count=cancelled)
            self.scheduler.shutdown()
        for t in self._tasks:
            t.cancel()
        await self.collector.drain(max(0.5, deadline - time.monotonic()))
        await self.collector.stop()
        if self.alerts is not None:
            try:
                await self.alerts.stop(max(0.5, deadline - time.monotonic()))
            except Exception:
                log.exception("alerts_stop_failed")
        for sink in self.sinks.values():
            try:
                await sink.stop(max(0.5, deadline - time.monotonic()))
            except Exception:
                log.exception("sink_stop_failed", sink=sink.name)
        try:
            self._save_state(deadline)
        except Exception:
            log.exception("state_save_failed")
        await self.loop_monitor.stop()
        await runner.cleanup()
        self.store.close()
        log.info("daemon_stopped")


def run_daemon(config_path: str | None, demo_path: Path) -> int:
    logs.configure()
    source = config_path or str(demo_path)
    try:
        settings = load_settings(source)
        require_targets(settings, source)
    except ConfigError as exc:
        for line in exc.lines:
            print(f"error: {line}", file=sys.stderr)
        return 2
    problems = settings.check_secrets()
    if (why := storage_problem(settings.storage.path)) is not None:
        problems.append(f"storage.path: {why}")
    if problems:
        for p in problems:
            print(f"error: {source}: {p}", file=sys.stderr)
        return 2
    from daemon.sweep import sweep_warnings

    for w in settings.warnings() + sweep_warnings(settings):
        print(f"warning: {source}: {w}", file=sys.stderr)
    if config_path is None:
        print(
            f"llm-vitals: no -c given: running the built-in demo against the bundled simulator.\n"
            f"  status page  http://{settings.http.listen}/\n"
            f"  metrics      http://{settings.http.listen}/metrics\n"
            f"  status JSON  http://{settings.http.listen}/api/v1/status\n"
            f"  state        {settings.storage.path} (alert state, silences, results; "
            f"`llm-vitals silence ...` without -c uses it too)",
            file=sys.stderr,
        )
    try:
        daemon = Daemon(settings, config_path, source)
    except (sqlite3.Error, OSError) as exc:
        # checked above, but the disk can change in between (or be full)
        print(f"error: {source}: storage.path: cannot open {settings.storage.path}: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(daemon.run())
