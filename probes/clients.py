"""HTTP clients for probes: one small httpx client per target, sharing one TLS context.

One shared pool for everything would put hundreds of connections in one httpcore pool,
whose bookkeeping scans every connection on every request start and close: at 200
concurrent streams that alone cost milliseconds per probe and made our timestamps late.
A client per target keeps each pool tiny; a target never has two probes at once.

A target probed less often than the keep-alive expiry never reuses a connection (every
probe connects, and its connect and TLS phases are measured): its client keeps no idle
connection. httpcore expires an idle connection only when the pool is next used, so a
kept one sat open until the target's next probe a minute later, ~1,000 idle sockets and
their parsers at 1,000 targets for nothing.
"""

from __future__ import annotations

import asyncio
import ssl

import httpx

from probes.httpclient import probe_client


class ClientPool:
    def __init__(self, keepalive_expiry: float = 5.0) -> None:
        self._ssl: ssl.SSLContext = httpx.create_ssl_context()  # creating one costs ~25 ms
        self._clients: dict[str, tuple[httpx.AsyncClient, bool]] = {}  # key -> (client, keeps idle)
        self._keepalive_expiry = keepalive_expiry
        self._closing: set[asyncio.Task[None]] = set()

    def client_for(self, key: str, interval: float | None = None) -> httpx.AsyncClient:
        """The target's client. `interval`: how often the target is probed (None: unknown,
        or ad hoc), to tell whether an idle connection could ever be reused."""
        keep = interval is None or interval <= self._keepalive_expiry
        entry = self._clients.get(key)
        if entry is not None and entry[1] == keep:
            return entry[0]
        if entry is not None:  # the interval crossed the expiry (a reload): the other kind
            task = asyncio.get_running_loop().create_task(entry[0].aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=2 if keep else 0,
                              keepalive_expiry=self._keepalive_expiry)
        client = probe_client(verify=self._ssl, limits=limits)
        self._clients[key] = (client, keep)
        return client

    async def retain(self, keys: set[str]) -> None:
        """Close the clients of targets that are gone (after a reload)."""
        for key in [k for k in self._clients if k not in keys]:
            await self._clients.pop(key)[0].aclose()

    async def aclose(self) -> None:
        for client, _keep in self._clients.values():
            await client.aclose()
        self._clients.clear()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def __len__(self) -> int:
        return len(self._clients)
