"""Self-monitoring: event-loop lag (how late a short timer fires) and a liveness heartbeat."""

from __future__ import annotations

import asyncio
import time

from daemon.metrics import Metrics
from daemon.tasks import cancel_and_wait

TICK = 0.1


class LoopMonitor:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self.last_beat = time.monotonic()
        self.lag = 0.0
        self.max_lag = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="loop-monitor")

    async def _run(self) -> None:
        while True:
            t = time.monotonic()
            await asyncio.sleep(TICK)
            now = time.monotonic()
            self.lag = max(0.0, now - t - TICK)
            self.max_lag = max(self.max_lag * 0.99, self.lag)
            self.last_beat = now
            self._metrics.loop_lag.set(self.lag)

    def alive(self, stale_after: float = 5.0) -> bool:
        return time.monotonic() - self.last_beat < stale_after

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
