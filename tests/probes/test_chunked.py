"""The lean reader of chunked bodies: however the bytes are split into reads, the payload
is the chunks' data; a malformed body is a protocol error; the probe path takes it with
the httpx and httpcore we pin; and h11 is handed the end of the response, so a kept-alive
connection is reused however the head and the first chunk were split."""

from __future__ import annotations

import asyncio
import json
import random

import h11
import httpx
import pytest

from core.result import Outcome
from probes.chunked import ChunkedDecoder, chunked_body
from probes.clients import ClientPool
from probes.runner import run_probe
from probes.simulator import Scenario, Simulator
from probes.simulator.scenario import Script
from probes.target import Expectation, ProbeSpec, ProbeTarget, ProviderSpec


def _encode(pieces: list[bytes], trailers: bytes = b"", ext: bool = False) -> bytes:
    out = b""
    for i, p in enumerate(pieces):
        size = f"{len(p):x}" if i % 2 else f"{len(p):X}"
        out += size.encode() + (b";name=value" if ext and i % 3 == 0 else b"") + b"\r\n" + p + b"\r\n"
    return out + b"0\r\n" + trailers + b"\r\n"


def _decode(parts: list[bytes]) -> tuple[bytes, ChunkedDecoder]:
    d = ChunkedDecoder()
    return b"".join(d.feed(p) for p in parts), d


def _split(data: bytes, rng: random.Random) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(data)), rng.randint(1, min(12, len(data) - 1))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def test_every_split_of_a_body_gives_its_payload() -> None:
    rng = random.Random(15)
    for _ in range(300):
        pieces = [rng.randbytes(rng.randint(1, 300)) for _ in range(rng.randint(1, 6))]
        body = _encode(pieces, trailers=b"x-trailer: 1\r\n" if rng.random() < 0.3 else b"", ext=rng.random() < 0.3)
        payload, d = _decode(_split(body, rng))
        assert payload == b"".join(pieces) and d.done and not d.surplus
    body = _encode([b"data: a\n\n", b"\r\n\r\n"])  # payload that looks like framing
    payload, d = _decode([body[i:i + 1] for i in range(len(body))])
    assert payload == b"data: a\n\n\r\n\r\n" and d.done


def test_the_boundary_is_known_between_chunks_only() -> None:
    d = ChunkedDecoder()
    assert d.at_boundary
    d.feed(b"3\r\nab")
    assert not d.at_boundary
    d.feed(b"c\r")
    assert not d.at_boundary
    d.feed(b"\n")
    assert d.at_boundary and not d.done
    d.feed(b"1")  # a size line begun
    assert not d.at_boundary


@pytest.mark.parametrize("body", [
    b"zz\r\nab\r\n",  # not hex
    b"-1\r\nab\r\n",
    b"0x2\r\nab\r\n",
    b"2\r\nabXY",  # no CRLF after the data
    b"2\r\nab\rX",
    b"1" * 21 + b"\r\n",  # more hex digits than h11 takes
])
def test_a_malformed_body_is_a_protocol_error(body: bytes) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        _decode([body])
    with pytest.raises(httpx.RemoteProtocolError):
        _decode([body[i:i + 1] for i in range(len(body))])


def test_a_line_without_end_is_bounded() -> None:
    d = ChunkedDecoder()
    with pytest.raises(httpx.RemoteProtocolError):
        for _ in range(100):
            d.feed(b"a" * 1024)


def test_bytes_after_the_end_are_dropped_and_noted() -> None:
    payload, d = _decode([_encode([b"hi"]) + b"HTTP/1.1 200 OK\r\n"])
    assert payload == b"hi" and d.done and d.surplus


SCENARIO = Scenario(defaults=Script(ttft=0.02, itl=0.002, jitter=0, tokens=4))


async def test_the_probe_path_reads_the_body_itself_with_the_pinned_httpx() -> None:
    """If a new httpx or httpcore moves the h11 state, this fails (the general path would
    still be right, at a third more CPU a probe)."""
    pool = ClientPool()
    async with Simulator(SCENARIO) as sim:
        try:
            client = pool.client_for("t", interval=60.0)
            req = httpx.Request("POST", sim.url + "/v1/chat/completions",
                                json={"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]})
            resp = await client.send(req, stream=True)
            try:
                body = chunked_body(resp)
                assert body is not None
                payload = b"".join([p async for _, p in body.pieces()])
            finally:
                await resp.aclose()
        finally:
            await pool.aclose()
    assert payload.rstrip().endswith(b"data: [DONE]")


def _sse(text: str) -> bytes:
    obj = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
    return f"data: {json.dumps(obj)}\n\n".encode()


HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
BODY = _encode([_sse("po"), _sse("ng"), b"data: [DONE]\n\n"], trailers=b"x-t: 1\r\n")


class KeepAliveServer:
    """Answers every request on a connection with HEAD + BODY, written in the given
    pieces a few milliseconds apart (each its own read on our side)."""

    def __init__(self, cuts: list[int]) -> None:
        data = HEAD + BODY
        self.pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        self.connections = 0
        self.url = ""
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> KeepAliveServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await reader.read(65536)
                    if not data:
                        return
                    conn.receive_data(data)
                elif isinstance(event, h11.EndOfMessage):
                    # the response's bytes are ours to split: h11 only tracks the state
                    conn.send(h11.Response(status_code=200, headers=[("transfer-encoding", "chunked")]))
                    conn.send(h11.EndOfMessage())
                    for piece in self.pieces:
                        writer.write(piece)
                        await writer.drain()
                        await asyncio.sleep(0.005)
                    conn.start_next_cycle()
        finally:
            writer.close()


def _cut_points() -> list[list[int]]:
    h = len(HEAD)
    first = BODY.index(b"\r\n", BODY.index(b"\r\n") + 2) + 2  # the end of the first chunk
    return [
        [h],  # head alone, then the whole body
        [],  # head and whole body in one read (h11 buffered all of it)
        [h + first],  # head with the first chunk
        [h + 5],  # head with part of the first chunk's data
        [h + 1],  # head with part of a size line
        [h + first - 1, h + first + 3],  # a CR and LF apart; a size line split
        [h + len(BODY) - 3],  # the trailer section split
    ]


@pytest.mark.parametrize("cuts", _cut_points())
async def test_a_kept_alive_connection_is_reused_however_the_head_and_body_were_split(cuts: list[int]) -> None:
    pool = ClientPool(keepalive_expiry=5.0)
    async with KeepAliveServer(cuts) as server:
        try:
            target = ProbeTarget(ProviderSpec("p", "openai_compatible", server.url + "/v1"), "m",
                                 ProbeSpec(expect=Expectation(contains="pong")), timeout=5)
            results = [await run_probe(pool.client_for("t", interval=1.0), target) for _ in range(3)]
        finally:
            await pool.aclose()
    for r in results:
        assert r.outcome is Outcome.OK, r.error
        assert r.text == "pong" and r.token_chunks == 2
    assert server.connections == 1
    assert [r.connect for r in results][1:] == [0.0, 0.0]


async def _truncated(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    await reader.read(65536)
    writer.write(HEAD + BODY[:BODY.index(b"[DONE]")])
    await writer.drain()
    writer.close()


async def test_a_body_cut_short_is_a_broken_stream() -> None:
    server = await asyncio.start_server(_truncated, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    pool = ClientPool()
    try:
        target = ProbeTarget(ProviderSpec("p", "openai_compatible", url + "/v1"), "m", ProbeSpec(), timeout=5)
        r = await run_probe(pool.client_for("t", interval=60.0), target)
    finally:
        await pool.aclose()
        server.close()
    assert r.outcome is Outcome.STREAM_ERROR
    assert r.error is not None and "incomplete chunked read" in r.error

