"""A loopback HTTP/1.1 server that replays scripted bytes with scripted pauses.

Each write is flushed on its own (TCP_NODELAY) so a test controls exactly what arrives in
which read: one event split across writes, several events in one write, a stall.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass, field

import h11


@dataclass
class Script:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=lambda: [("content-type", "text/event-stream")])
    writes: list[tuple[float, bytes]] = field(default_factory=list)  # (pause before, bytes)
    header_delay: float = 0.0
    end: str = "eom"  # eom: clean chunked end · abort: reset the connection · hang: never end


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    write_ns: list[int] = field(default_factory=list)  # time.perf_counter_ns() after each write


class ReplayServer:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.seen: list[Seen] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> ReplayServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = h11.Connection(h11.SERVER)
        req: h11.Request | None = None
        body = b""
        try:
            while True:
                ev = conn.next_event()
                if ev is h11.NEED_DATA:
                    data = await reader.read(65536)
                    if not data:
                        return
                    conn.receive_data(data)
                elif isinstance(ev, h11.Request):
                    req = ev
                elif isinstance(ev, h11.Data):
                    body += ev.data
                elif isinstance(ev, h11.EndOfMessage):
                    break
            assert req is not None
            seen = Seen(req.method.decode(), req.target.decode(),
                        {k.decode().lower(): v.decode() for k, v in req.headers}, body)
            self.seen.append(seen)
            s = self.script
            if s.header_delay:
                await asyncio.sleep(s.header_delay)
            writer.write(conn.send(h11.Response(status_code=s.status, headers=[*s.headers, ("transfer-encoding", "chunked")])))
            await writer.drain()
            for pause, data in s.writes:
                if pause:
                    await asyncio.sleep(pause)
                writer.write(conn.send(h11.Data(data=data)))
                await writer.drain()
                seen.write_ns.append(time.perf_counter_ns())
            if s.end == "eom":
                writer.write(conn.send(h11.EndOfMessage()))
                await writer.drain()
            elif s.end == "abort":
                writer.transport.abort()
                return
            else:
                await asyncio.sleep(3600)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if not writer.is_closing():
                writer.close()
