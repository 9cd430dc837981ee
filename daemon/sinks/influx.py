"""InfluxDB sink that loses nothing: batches to the v2 (/api/v2/write) or v1 (/write)
endpoint through httpx, with a write-ahead durable spool in the SQLite store.

observe() only appends to memory. A background task moves points into the spool and
sends the spool oldest-first. Down, slow, 5xx, 429, or a database/bucket that is missing
or refuses the credentials (401/403/404: the server's state, not the points'): the
points stay spooled and are replayed with backoff (Retry-After honoured). Any other 4xx:
the batch is bad data, logged and dropped (counted), never retried forever. Same
timestamp + tags overwrite in InfluxDB, so a replay after an unacknowledged success
cannot duplicate a point.

When the spool itself cannot be written (disk full, read-only), points wait in memory
(bounded) and are sent from there. Whatever has to be dropped (spool or memory bound) is
counted, logged and leaves the sink degraded for DROP_DEGRADED_SECONDS.
"""

from __future__ import annotations

import asyncio
import gzip
import random
import sqlite3
import time
from collections import deque
from typing import Any

import httpx
import structlog

from alerts.model import AlertTransition
from core.http_retry import classify
from core.redact import SECRETS
from core.result import ProbeResult
from core.secrets import read_secret
from core.store import Store
from daemon.config import InfluxConfig
from daemon.metrics import Metrics
from daemon.sinks.influx_points import alert_line, probe_line, sweep_lines
from daemon.sinks.influx_spool import Spool
from daemon.tasks import cancel_and_wait

log = structlog.get_logger("llm_vitals.influxdb")

MAX_BACKOFF = 60.0
DROP_DEGRADED_SECONDS = 600.0
# Not the points' fault: the database or bucket is missing (being created, restored) or
# the credentials are refused (being rotated). Dropping would lose every point meanwhile.
RETRYABLE_4XX = frozenset({401, 403, 404, 409})  # beside 408, 425 and 429 (core.http_retry)


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
        self._spool_error: str | None = None
        self._dropped = 0
        self._last_drop: float | None = None
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

    def observe(self, result: ProbeResult) -> None:
        self._push(probe_line(result))

    def submit_alert(self, transition: AlertTransition) -> None:
        self._push(alert_line(transition))

    def submit_sweep(self, name: str, target: str, region: str, started_at: float, outcome: str,
                     levels: list[dict[str, Any]], saturation: dict[str, Any] | None) -> None:
        """A scheduled sweep's levels, measurement `sweep` (spooled like every point)."""
        for line in sweep_lines(name, target, region, started_at, outcome, levels, saturation):
            self._push(line)
        self._wake.set()

    def _push(self, line: str) -> None:
        if len(self._mem) >= self._memory_max:
            self._mem.popleft()
            self._drop(1, "memory_full")
        self._mem.append(line)
        if len(self._mem) >= self.cfg.batch_size:
            self._wake.set()

    def _drop(self, n: int, why: str) -> None:
        """Points lost for good: counted, logged (at most once a second per burst) and the
        sink reported degraded for a while, so a loss is never silent."""
        self._metrics.sink_points.labels(self.name, "dropped").inc(n)
        self._metrics.sink_errors.labels(self.name).inc()
        self._dropped += n
        now = time.monotonic()
        if self._last_drop is None or now - self._last_drop > 1.0:
            log.error("influxdb_points_dropped", reason=why, dropped=n, dropped_total=self._dropped,
                      spooled=self._spooled, memory=len(self._mem))
        self._last_drop = now

    async def stop(self, deadline: float) -> None:
        await cancel_and_wait(self._task)
        try:
            await asyncio.wait_for(self._flush(final=True), deadline)
        except TimeoutError:
            log.warning("influxdb_flush_timeout_points_stay_spooled", spooled=self._spooled)
        except Exception:
            log.exception("influxdb_final_flush_failed")
        if self._mem:  # the spool was unwritable and the database did not take them in time
            n = len(self._mem)
            self._mem.clear()
            self._drop(n, "unwritable_spool_at_stop")
        if self._client is not None:
            await self._client.aclose()

    def health(self) -> dict[str, Any]:
        dropping = self._last_drop is not None and time.monotonic() - self._last_drop < DROP_DEGRADED_SECONDS
        degraded = self._last_error is not None or self._spool_error is not None or dropping
        return {"ok": not degraded, "spooled": self._spooled, "memory": len(self._mem),
                "error": self._last_error, "spool_error": self._spool_error, "dropped": self._dropped,
                "backoff_seconds": round(self._backoff, 1)}

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
            lines, self._mem = self._mem, deque()
            try:
                dropped = await asyncio.to_thread(self._spool.append, list(lines))
            except sqlite3.Error as exc:
                # The store is full or read-only: the points stay in memory (bounded by
                # memory_max) and go straight to the database; nothing is durable meanwhile.
                lines.extend(self._mem)  # what arrived during the append goes after them
                self._mem = lines
                over = len(self._mem) - self._memory_max
                for _ in range(max(0, over)):
                    self._mem.popleft()
                if over > 0:
                    self._drop(over, "memory_full")
                if self._spool_error is None:
                    log.error("influxdb_spool_unwritable_sending_from_memory", error=str(exc), memory=len(self._mem))
                    self._metrics.sink_errors.labels(self.name).inc()
                self._spool_error = f"spool: {exc}"
                await self._send_memory()
                if self._mem:
                    return
            else:
                if self._spool_error is not None:
                    log.info("influxdb_spool_writable_again")
                    self._spool_error = None
                self._metrics.sink_points.labels(self.name, "spooled").inc(len(lines))
                if dropped:
                    self._drop(dropped, "spool_full")
        self._spooled = await asyncio.to_thread(self._spool.size)
        replaying = self._backoff > 0 or self._spooled > self.cfg.batch_size
        while self._spooled:
            batch = await asyncio.to_thread(self._spool.oldest, self.cfg.batch_size)
            if not batch:
                break
            if not await self._send([line for _, line in batch], "replayed" if replaying else "written"):
                self._metrics.sink_spool.labels(self.name).set(self._spooled)
                return
            await asyncio.to_thread(self._spool.delete_through, batch[-1][0])
            self._spooled = max(0, self._spooled - len(batch))
            self._metrics.sink_spool.labels(self.name).set(self._spooled)
            if not final:
                await asyncio.sleep(0)  # a long replay must not starve the probes
        self._metrics.sink_spool.labels(self.name).set(self._spooled)

    async def _send_memory(self) -> None:
        """Send what waits in memory (the spool being unwritable), oldest first."""
        while self._mem:
            lines = [self._mem[i] for i in range(min(self.cfg.batch_size, len(self._mem)))]
            if not await self._send(lines, "written"):
                return
            for _ in lines:
                self._mem.popleft()

    async def _send(self, lines: list[str], state: str) -> bool:
        """Write one batch; True when it is done with (written, or rejected as bad data),
        False when it must stay and be retried after the backoff."""
        try:
            await self._write(lines)
        except WriteRejected as exc:
            self._metrics.sink_points.labels(self.name, "rejected").inc(len(lines))
            self._metrics.sink_errors.labels(self.name).inc()
            log.error("influxdb_rejected_batch_dropped", reason=str(exc), points=len(lines), first_point=lines[0][:300])
            return True
        except WriteFailed as exc:
            self._metrics.sink_errors.labels(self.name).inc()
            self._metrics.sink_points.labels(self.name, "retried").inc(len(lines))
            self._backoff = min(MAX_BACKOFF, max(1.0, self._backoff * 2)) * random.uniform(0.8, 1.2)
            if exc.retry_after is not None:
                self._backoff = max(self._backoff, min(exc.retry_after, MAX_BACKOFF))
            if self._last_error != str(exc):
                log.warning("influxdb_write_failed_points_kept", reason=str(exc), spooled=self._spooled,
                            memory=len(self._mem), retry_in=round(self._backoff, 1))
            self._last_error = str(exc)
            return False
        self._metrics.sink_points.labels(self.name, state).inc(len(lines))
        if self._last_error is not None:
            log.info("influxdb_recovered", spooled=self._spooled)
        self._last_error = None
        self._backoff = 0.0
        self._last_ok = time.time()
        return True

    async def _write(self, lines: list[str]) -> None:
        assert self._client is not None
        body = "\n".join(lines).encode()
        if self.cfg.gzip:
            body = gzip.compress(body, compresslevel=5)
        t0 = time.perf_counter()
        try:
            resp = await self._client.post(self._url, params=self._params, headers=self._headers, content=body)
        except httpx.HTTPError as exc:
            raise WriteFailed(SECRETS.clip(f"{type(exc).__name__}: {exc}", 200)) from None
        finally:
            self._metrics.sink_write.labels(self.name).observe(time.perf_counter() - t0)
        failure = classify(resp.status_code, resp.headers, also_transient=RETRYABLE_4XX)
        if failure is None:
            return
        text = SECRETS.clip(resp.text, 300)  # a proxy may echo the credentials
        if failure.retry:
            raise WriteFailed(f"HTTP {failure.status}: {text}", failure.retry_after)
        raise WriteRejected(f"HTTP {failure.status}: {text}")
