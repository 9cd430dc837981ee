"""InfluxDB sink that loses nothing: batches to the v2 (/api/v2/write) or v1 (/write)
endpoint through httpx, with a write-ahead durable spool in the SQLite store.

submit() only appends to memory. A background task moves points into the spool and
sends the spool oldest-first. Down, slow, 5xx or 429: the points stay spooled and are
replayed with backoff (Retry-After honoured). 4xx: the batch is bad data, logged and
dropped (counted), never retried forever. Same timestamp + tags overwrite in InfluxDB,
so a replay after an unacknowledged success cannot duplicate a point.
"""

from __future__ import annotations

import asyncio
import gzip
import random
import time
from collections import deque
from typing import Any

import httpx
import structlog

from daemon.config import InfluxConfig, read_secret
from daemon.metrics import Metrics
from daemon.sinks.base import AlertTransition
from daemon.sinks.influx_points import alert_line, probe_line
from daemon.sinks.influx_spool import Spool
from daemon.store import Store
from daemon.tasks import cancel_and_wait
from probes.result import ProbeResult

log = structlog.get_logger("llm_vitals.influxdb")

MAX_BACKOFF = 60.0


class WriteRejected(Exception):
    """4xx: the database will never accept this batch."""


class WriteFailed(Exception):
    """Down, slow, 5xx or 429: try again later."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class InfluxSink:
    name = "influxdb"

    def __init__(self, cfg: InfluxConfig, store: Store, metrics: Metrics, *, memory_max: int = 100_000) -> None:
        self.cfg = cfg
        self._metrics = metrics
        self._spool = Spool(store, self.name, cfg.spool_max_points)
        self._mem: deque[str] = deque()
        self._memory_max = memory_max
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._url, self._params, self._headers = self._endpoint()
        self._backoff = 0.0
        self._last_error: str | None = None
        self._last_ok: float | None = None
        self._spooled = self._spool.size()

    def _endpoint(self) -> tuple[str, dict[str, str], dict[str, str]]:
        c = self.cfg
        headers = {"content-type": "text/plain; charset=utf-8"}
        if c.gzip:
            headers["content-encoding"] = "gzip"
        if c.api_version == 2:
            token = read_secret(c.token_env, c.token_file, "influxdb.token")
            if token:
                headers["authorization"] = f"Token {token.get()}"
            params = {"bucket": c.bucket or "", "precision": "ns"}
            if c.org:
                params["org"] = c.org
            return f"{c.url.rstrip('/')}/api/v2/write", params, headers
        params = {"db": c.database or "", "precision": "ns"}
        if c.retention_policy:
            params["rp"] = c.retention_policy
        user = read_secret(c.username_env, c.username_file, "influxdb.username")
        password = read_secret(c.password_env, c.password_file, "influxdb.password")
        if user and password:
            import base64

            cred = base64.b64encode(f"{user.get()}:{password.get()}".encode()).decode()
            headers["authorization"] = f"Basic {cred}"
        return f"{c.url.rstrip('/')}/write", params, headers

    # -- Sink protocol -------------------------------------------------------------
    async def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=self.cfg.timeout, trust_env=False)
        self._task = asyncio.create_task(self._run(), name="influxdb-sink")
        if self._spooled:
            log.info("influxdb_spool_replay_pending", points=self._spooled)

    def submit(self, result: ProbeResult) -> None:
        self._push(probe_line(result))

    def submit_alert(self, transition: AlertTransition) -> None:
        self._push(alert_line(transition))

    def _push(self, line: str) -> None:
        if len(self._mem) >= self._memory_max:
            self._mem.popleft()
            self._metrics.sink_points.labels(self.name, "dropped").inc()
        self._mem.append(line)
        if len(self._mem) >= self.cfg.batch_size:
            self._wake.set()

    async def stop(self, deadline: float) -> None:
        await cancel_and_wait(self._task)
        try:
            await asyncio.wait_for(self._flush(final=True), deadline)
        except TimeoutError:
            log.warning("influxdb_flush_timeout_points_stay_spooled", spooled=self._spooled)
        except Exception:
            log.exception("influxdb_final_flush_failed")
        if self._client is not None:
            await self._client.aclose()

    def health(self) -> dict[str, Any]:
        degraded = self._last_error is not None
        return {"ok": not degraded, "spooled": self._spooled, "memory": len(self._mem),
                "error": self._last_error, "backoff_seconds": round(self._backoff, 1)}

    def depth(self) -> int:
        return len(self._mem) + self._spooled

    # -- the loop ------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.cfg.flush_interval)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self._flush()
            except Exception:
                log.exception("influxdb_flush_failed")
            if self._backoff:
                await asyncio.sleep(self._backoff)

    async def _flush(self, final: bool = False) -> None:
        if self._mem:
            lines = list(self._mem)
            self._mem.clear()
            dropped = await asyncio.to_thread(self._spool.append, lines)
            self._metrics.sink_points.labels(self.name, "spooled").inc(len(lines))
            if dropped:
                self._metrics.sink_points.labels(self.name, "dropped").inc(dropped)
                log.error("influxdb_spool_full_dropped_oldest", dropped=dropped)
        self._spooled = await asyncio.to_thread(self._spool.size)
        replaying = self._backoff > 0 or self._spooled > self.cfg.batch_size
        while self._spooled:
            batch = await asyncio.to_thread(self._spool.oldest, self.cfg.batch_size)
            if not batch:
                break
            try:
                await self._write([line for _, line in batch])
            except WriteRejected as exc:
                self._metrics.sink_points.labels(self.name, "rejected").inc(len(batch))
                self._metrics.sink_errors.labels(self.name).inc()
                log.error("influxdb_rejected_batch_dropped", reason=str(exc), points=len(batch),
                          first_point=batch[0][1][:300])
            except WriteFailed as exc:
                self._metrics.sink_errors.labels(self.name).inc()
                self._backoff = min(MAX_BACKOFF, max(1.0, self._backoff * 2)) * random.uniform(0.8, 1.2)
                if exc.retry_after is not None:
                    self._backoff = max(self._backoff, exc.retry_after)
                if self._last_error != str(exc):
                    log.warning("influxdb_write_failed_points_spooled", reason=str(exc), spooled=self._spooled,
                                retry_in=round(self._backoff, 1))
                self._last_error = str(exc)
                self._metrics.sink_spool.labels(self.name).set(self._spooled)
                return
            else:
                state = "replayed" if replaying else "written"
                self._metrics.sink_points.labels(self.name, state).inc(len(batch))
                if self._last_error is not None:
                    log.info("influxdb_recovered", spooled=self._spooled)
                self._last_error = None
                self._backoff = 0.0
                self._last_ok = time.time()
            await asyncio.to_thread(self._spool.delete_through, batch[-1][0])
            self._spooled = max(0, self._spooled - len(batch))
            self._metrics.sink_spool.labels(self.name).set(self._spooled)
            if not final:
                await asyncio.sleep(0)  # a long replay must not starve the probes
        self._metrics.sink_spool.labels(self.name).set(self._spooled)

    async def _write(self, lines: list[str]) -> None:
        assert self._client is not None
        body = "\n".join(lines).encode()
        if self.cfg.gzip:
            body = gzip.compress(body, compresslevel=5)
        t0 = time.perf_counter()
        try:
            resp = await self._client.post(self._url, params=self._params, headers=self._headers, content=body)
        except httpx.HTTPError as exc:
            raise WriteFailed(f"{type(exc).__name__}: {exc}"[:200]) from None
        finally:
            self._metrics.sink_write.labels(self.name).observe(time.perf_counter() - t0)
        if resp.status_code < 300:
            return
        text = resp.text[:300]
        if resp.status_code == 429 or resp.status_code >= 500:
            ra = resp.headers.get("retry-after")
            raise WriteFailed(f"HTTP {resp.status_code}: {text}", float(ra) if ra and ra.isdigit() else None)
        raise WriteRejected(f"HTTP {resp.status_code}: {text}")
