"""An asyncio-native network backend for httpcore that stamps every socket read.

Two reasons. Timing: the stamp is taken the moment the bytes come off the socket, before
h11, httpcore and httpx process them, which is when the bytes *arrived* (DESIGN §3);
run_probe reads it from the response's `network_stream` extension. Cost: it talks to
asyncio streams directly instead of through anyio, which at hundreds of concurrent
streams took a large share of the CPU spent per chunk.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
import typing

import httpcore
import httpx

_READ_ERRORS = (OSError, asyncio.IncompleteReadError, ConnectionError)


def _readable(sock: socket.socket) -> bool:
    import select

    try:
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


class StampedStream(httpcore.AsyncNetworkStream):
    __slots__ = ("_reader", "_writer", "last_read_ns")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self.last_read_ns = 0

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            if timeout is None:
                data = await self._reader.read(max_bytes)
            else:
                async with asyncio.timeout(timeout):
                    data = await self._reader.read(max_bytes)
        except TimeoutError:
            raise httpcore.ReadTimeout(f"no data for {timeout:g}s") from None
        except _READ_ERRORS as exc:
            raise httpcore.ReadError(str(exc) or type(exc).__name__) from exc
        self.last_read_ns = time.perf_counter_ns()
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            self._writer.write(buffer)
            if timeout is None:
                await self._writer.drain()
            else:
                async with asyncio.timeout(timeout):
                    await self._writer.drain()
        except TimeoutError:
            raise httpcore.WriteTimeout(f"write blocked for {timeout:g}s") from None
        except _READ_ERRORS as exc:
            raise httpcore.WriteError(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except _READ_ERRORS:
            pass

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"TLS handshake took over {timeout:g}s") from None
        except (ssl.SSLError, *_READ_ERRORS) as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        return self

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "ssl_object":
            return self._writer.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._writer.get_extra_info("sockname")
        if info == "server_addr":
            return self._writer.get_extra_info("peername")
        if info == "socket":
            return self._writer.get_extra_info("socket")
        if info == "is_readable":
            # An idle keep-alive connection that is readable was closed (or spoke out of
            # turn) by the server: httpcore then drops it instead of reusing it.
            if self._reader.at_eof() or getattr(self._reader, "_buffer", None):
                return True
            sock = self._writer.get_extra_info("socket")
            return sock is None or _readable(sock)
        return None


class StampedBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None) -> StampedStream:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, local_addr=(local_address, 0) if local_address else None, limit=1 << 20)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"connect to {host}:{port} took over {timeout:g}s") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for opt in socket_options or ():
                sock.setsockopt(*opt)
        return StampedStream(reader, writer)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None) -> StampedStream:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_unix_connection(path)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"connect to {path} took over {timeout:g}s") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        return StampedStream(reader, writer)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def stamped_transport(*, verify: ssl.SSLContext | bool = True, limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose connections use StampedBackend.

    httpx has no public hook for httpcore's network backend, so the pool it built is
    replaced by an identical one with our backend (same limits, TLS context, HTTP/1.1).
    """
    transport = httpx.AsyncHTTPTransport(verify=verify, limits=limits)
    old = transport._pool
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=old._ssl_context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        http1=True,
        http2=False,
        network_backend=StampedBackend(),
    )
    return transport


def arrival_ns(network_stream: object | None) -> int:
    """When the bytes just handed to us came off the socket (now, if unknown)."""
    t = getattr(network_stream, "last_read_ns", 0)
    return t if t else time.perf_counter_ns()
