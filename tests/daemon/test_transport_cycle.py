"""A closed asyncio connection is freed by reference counting (daemon/transport_cycle.py):
the GC policy freezes the heap every few seconds, and a connection frozen while open and
left as a cycle when it closed was never freed."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest
from aiohttp import web

from daemon import transport_cycle


@pytest.fixture(autouse=True)
def _no_cyclic_gc() -> Iterator[None]:
    """Only reference counting frees anything while a test runs."""
    assert transport_cycle.install()
    gc.collect()
    gc.disable()
    yield
    gc.enable()
    gc.unfreeze()


async def _connection(close: str) -> tuple[weakref.ref[asyncio.BaseTransport], weakref.ref[asyncio.BaseTransport]]:
    """A connection to a local asyncio server, ended by the client (`close` or `abort`):
    weak references to the server's and the client's transports."""
    served: list[weakref.ref[asyncio.BaseTransport]] = []
    ended = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served.append(weakref.ref(writer.transport))
        await reader.read()  # until the client has gone
        writer.close()
        ended.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"hello")
    await writer.drain()
    client = weakref.ref(writer.transport)
    if close == "abort":
        writer.transport.abort()
    else:
        writer.close()
    await ended.wait()
    server.close()
    await server.wait_closed()
    del reader, writer
    for _ in range(3):
        await asyncio.sleep(0)  # connection_lost runs from the loop
    return served[0], client


@pytest.mark.parametrize("close", ["close", "abort"])
async def test_a_closed_connection_is_freed_by_reference_counting(close: str) -> None:
    server_side, client_side = await _connection(close)
    assert server_side() is None
    assert client_side() is None


async def test_a_scrape_connection_frozen_while_open_leaves_nothing_behind_once_closed() -> None:
    """The leak the 5-second freeze had: an aiohttp server connection (a scrape, a health
    check) open at a freeze, closed later, is still freed."""
    app = web.Application()

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text="up 1\n")

    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        await reader.readuntil(b"up 1\n")
        server_side = [weakref.ref(t) for t in _transports() if t.get_extra_info("sockname")[1] == port]
        assert len(server_side) == 1
        gc.freeze()  # the GC policy's tick, while the connection is open
        writer.close()
        await writer.wait_closed()
        del reader, writer
        for _ in range(20):
            await asyncio.sleep(0.01)
            if server_side[0]() is None:
                break
        assert server_side[0]() is None
    finally:
        await runner.cleanup()


def _transports() -> list[asyncio.Transport]:
    from asyncio import selector_events

    return [o for o in gc.get_objects() if isinstance(o, selector_events._SelectorSocketTransport)]
