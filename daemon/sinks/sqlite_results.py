"""Probe results into the embedded SQLite store, in batches, off the event loop."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

import structlog

from alerts.model import AlertTransition
from core.result import ProbeResult
from core.store import Store
from daemon.metrics import Metrics
from daemon.tasks import cancel_and_wait

log = structlog.get_logger("llm_vitals.sqlite")


class SQLiteResultSink:
    name = "sqlite"

    def __init__(self, store: Store, metrics: Metrics, retention: float, maxlen: int = 100_000,
                 flush_interval: float = 1.0) -> None:
        self._store = store
        self._metrics = metrics
        self._retention = retention
        self._buf: deque[ProbeResult] = deque()
        self._maxlen = maxlen
        self._flush_interval = flush_interval
        self._task: asyncio.Task[None] | None = None
        self._last_error: str | None = None
        self._last_prune = 0.0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="sqlite-sink")

    def observe(self, result: ProbeResult) -> None:
        if len(self._buf) >= self._maxlen:
            self._buf.popleft()
            self._metrics.queue_dropped.labels("sqlite").inc()
        self._buf.append(result)

    def submit_sweep(self, name: str, target: str, region: str, started_at: float, outcome: str,
                     levels: list[dict[str, Any]], saturation: dict[str, Any] | None) -> None:
        pass  # the daemon keeps sweeps in their own table (daemon/sweep_store.py)

    def submit_alert(self, transition: AlertTransition) -> None:
        return None  # alert state lives in the alert engine's own tables

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._flush_interval)
            await self.flush()
            if time.monotonic() - self._last_prune > 3600:
                self._last_prune = time.monotonic()
                try:
                    removed = await asyncio.to_thread(self._store.prune, self._retention)
                    if removed:
                        log.info("store_pruned", removed=removed)
                except Exception as exc:
                    log.warning("store_prune_failed", error=str(exc))

    async def flush(self) -> None:
        if not self._buf:
            return
        batch = list(self._buf)
        self._buf.clear()
        try:
            rows = self._store.result_rows(batch)  # on the loop: the thread only runs SQLite
            await asyncio.to_thread(self._store.add_rows, rows)
            self._last_error = None
        except Exception as exc:
            self._metrics.sink_errors.labels(self.name).inc()
            self._last_error = f"{type(exc).__name__}: {exc}"
            log.error("store_write_failed", error=self._last_error, results=len(batch))
            # Put them back (oldest first) so a transient error (disk full, lock) loses nothing.
            self._buf.extendleft(reversed(batch))
            while len(self._buf) > self._maxlen:
                self._buf.popleft()
                self._metrics.queue_dropped.labels("sqlite").inc()

    async def stop(self, deadline: float) -> None:
        await cancel_and_wait(self._task)
        try:
            await asyncio.wait_for(self.flush(), deadline)
        except TimeoutError:
            log.warning("store_flush_timeout", left=len(self._buf))

    def health(self) -> dict[str, Any]:
        return {"ok": self._last_error is None, "pending": len(self._buf), "error": self._last_error}

    def depth(self) -> int:
        return len(self._buf)
