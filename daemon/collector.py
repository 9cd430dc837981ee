"""The collector: a bounded queue between the probes and everything downstream.

`put` never blocks and never fails: when the queue is full the oldest result is dropped
and counted, so a stuck consumer can cost data but never a probe (docs/architecture.md §1).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

import structlog

from core.result import ProbeResult
from daemon.metrics import Metrics
from daemon.tasks import cancel_and_wait

log = structlog.get_logger("llm_vitals.collector")

Consumer = Callable[[ProbeResult], None]


class Collector:
    def __init__(self, metrics: Metrics, maxlen: int = 10_000) -> None:
        self._queue: deque[ProbeResult] = deque()
        self._maxlen = maxlen
        self._metrics = metrics
        self._wake = asyncio.Event()
        self._consumers: list[tuple[str, Consumer]] = []
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    def subscribe(self, name: str, consumer: Consumer) -> None:
        self._consumers.append((name, consumer))

    def clear(self) -> None:
        self._consumers = []

    def put(self, result: ProbeResult) -> None:
        if len(self._queue) >= self._maxlen:
            self._queue.popleft()
            self._metrics.queue_dropped.labels("collector").inc()
        self._queue.append(result)
        self._idle.clear()
        self._wake.set()

    def depth(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="collector")

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                result = self._queue.popleft()
                for name, consume in self._consumers:
                    try:
                        consume(result)
                    except Exception:
                        # One broken consumer must not starve the others.
                        self._metrics.sink_errors.labels(name).inc()
                        log.exception("consumer_failed", consumer=name, target=result.target)
                # Let probes run between results when a backlog builds up.
                await asyncio.sleep(0)
            self._idle.set()

    async def drain(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            log.warning("collector_drain_timeout", left=len(self._queue))

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
