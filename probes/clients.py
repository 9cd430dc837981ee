"""HTTP clients for probes: one small httpx client per target, sharing one TLS context.

One shared pool for everything would put hundreds of connections in one httpcore pool,
whose bookkeeping scans every connection on every request start and close: at 200
concurrent streams that alone cost milliseconds per probe and made our timestamps late.
A client per target keeps each pool tiny; a target never has two probes at once.
"""

from __future__ import annotations

import ssl

import httpx

from probes.httpclient import probe_client


class ClientPool:
    def __init__(self, keepalive_expiry: float = 5.0) -> None:
        self._ssl: ssl.SSLContext = httpx.create_ssl_context()  # creating one costs ~25 ms
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._keepalive_expiry = keepalive_expiry

    def client_for(self, key: str) -> httpx.AsyncClient:
        client = self._clients.get(key)
        if client is None:
            limits = httpx.Limits(max_connections=32, max_keepalive_connections=2,
                                  keepalive_expiry=self._keepalive_expiry)
            client = probe_client(verify=self._ssl, limits=limits)
            self._clients[key] = client
        return client

    async def retain(self, keys: set[str]) -> None:
        """Close the clients of targets that are gone (after a reload)."""
        for key in [k for k in self._clients if k not in keys]:
            await self._clients.pop(key).aclose()

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    def __len__(self) -> int:
        return len(self._clients)
