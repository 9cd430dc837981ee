"""Shared helpers for the alerts tests."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from alerts.config import AlertsConfig
from alerts.engine import AlertEngine
from alerts.model import Alert, Event, Notification
from alerts.notifiers import Notifier
from core.aggregator import Aggregator
from core.result import Outcome
from core.store import Store
from daemon.metrics import Metrics
from tests.conftest import free_port
from tests.factories import result


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


class Recorder(Notifier):
    kind = "recorder"

    def __init__(self, cfg: object) -> None:
        super().__init__("recorder", cfg)
        self.sent: list[Notification] = []

    async def send(self, n: Notification) -> None:
        self.sent.append(n)

    def validate(self) -> None:
        pass

    def state(self) -> None:
        return None

    def restore(self, state: object) -> None:
        pass


def config(**extra: object) -> AlertsConfig:
    base: dict = {  # type: ignore[type-arg]
        "rules": [{"name": "down", "kind": "consecutive_failures", "count": 2, "resolve_after": 2,
                   "labels": {"severity": "page"}}],
        "receivers": [{"name": "pager", "webhook": {"url": "http://127.0.0.1:9/hook"}},
                      {"name": "boss", "webhook": {"url": "http://127.0.0.1:9/boss"}}],
        "route": {"receiver": "pager", "group_by": ["provider"], "group_wait": 0, "group_interval": 60,
                  "repeat_interval": 3600},
    }
    base.update(extra)
    return AlertsConfig(**base)


def engine(tmp_path: Path, cfg: AlertsConfig, clock: Clock, store: Store | None = None) -> tuple[AlertEngine, dict[str, Recorder]]:
    e = AlertEngine(cfg, store=store or Store(tmp_path / "s.db"), stats=Aggregator(clock), metrics=Metrics(), clock=clock)
    recs = {name: Recorder(n.cfg) for name, n in e.notifiers.items()}
    e.notifiers = recs  # type: ignore[assignment]
    return e, recs


async def step(e: AlertEngine, clock: Clock, ok: bool, models: tuple[str, ...] = ("m",), provider: str = "p",
               dt: float = 15, store: Store | None = None) -> None:
    """One probe per model, then one evaluation. With `store`, the results are also written
    to the SQLite results table, as the daemon's SQLite sink does."""
    clock.t += dt
    results = [result(0.3, provider=provider, model=m, outcome=Outcome.OK if ok else Outcome.HTTP_ERROR,
                      started_at=datetime.fromtimestamp(clock.t, UTC)) for m in models]
    for r in results:
        e.observe(r)
    if store is not None:
        store.add_results(results)
    await e.evaluate()
    await drain(e)


async def drain(e: AlertEngine) -> None:
    """Deliver what the engine queued, in this task (the tests' stand-in for the delivery workers)."""
    for q in e.delivery.queues.values():
        while not q.empty():
            n, attempt = q.get_nowait()
            await e.delivery.deliver(n, attempt)
            q.task_done()


def note(status: str = "firing", thread: str = "t1") -> Notification:
    now = time.time()
    a = Alert("target-down", {"provider": "openai", "model": "gpt-x", "probe": "short", "region": "eu", "severity": "page"},
              state="firing", firing_since=now - 300, summary="3 probes in a row failed",
              reason="http_error: HTTP 503: overloaded")
    ev = Event(status if status == "resolved" else "firing", a, now, duration=300.0 if status == "resolved" else None)
    return Notification("r", {"provider": "openai"}, [ev], thread)


async def serve(handler) -> tuple[web.AppRunner, str]:  # type: ignore[no-untyped-def]
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


