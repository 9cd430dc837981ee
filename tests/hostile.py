"""A hostile OpenAI-compatible provider, run as its own process (`python -m tests.hostile`).

The first path segment picks the behaviour (`{url}/endless/v1` as a provider's base_url):

    endless     valid token chunks as fast as the socket takes them, never ending
    hugeline    `data: ` then one line that never ends (no newline), as fast as possible
    hugereply   valid token chunks totalling ~50 MB, then a proper end
    shape-N     a well-framed chunk of wrong-shaped JSON (WRONG_SHAPES[N]), then a proper end
    liar        a one-token reply whose usage claims 10^12 completion tokens
    negative    a one-token reply whose usage claims -5 completion tokens
    slowloris   headers, then one byte every 50 ms, forever
    silence     accepts the request and never answers
    ok          a normal one-token reply ("pong") with usage

Its own process, so a probe that hogs the event loop cannot slow the server down with it:
the server keeps the socket full exactly as a remote one would.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

WRONG_SHAPES: tuple[object, ...] = (
    {"choices": [1]},
    {"choices": 3.7e16},
    {"choices": "abc"},
    {"choices": [{"delta": [1, 2]}]},
    {"choices": [{"delta": {"content": 5}}]},
    {"choices": [{"delta": {"content": "x"}, "finish_reason": ["stop"]}]},
    {"choices": [], "usage": "12"},
    {"choices": [], "usage": [1, 2]},
    {"choices": [], "usage": {"completion_tokens": "7"}},
    {"choices": [], "usage": {"completion_tokens": 1, "completion_tokens_details": 3}},
    {"choices": [{"delta": {"tool_calls": 7}}]},
    {"choices": [{"delta": {"tool_calls": [3]}}]},
    {"timings": {"prompt_ms": "x"}, "choices": [{"delta": {"content": "x"}}]},
    {"error": ["boom"]},
)


def _event(obj: object) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def _token(text: str) -> bytes:
    return _event({"id": "h", "object": "chat.completion.chunk",
                   "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]})


def _end(completion_tokens: int = 1) -> bytes:
    finish = _event({"id": "h", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    usage = _event({"id": "h", "choices": [],
                    "usage": {"prompt_tokens": 9, "completion_tokens": completion_tokens, "total_tokens": 10}})
    return finish + usage + b"data: [DONE]\n\n"


def _chunked(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
         b"x-request-id: hostile\r\n\r\n")
_LAST = b"0\r\n\r\n"


async def _read_request(reader: asyncio.StreamReader) -> str | None:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    path = lines[0].split(" ")[1] if len(lines[0].split(" ")) > 1 else "/"
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return path


async def _reply(writer: asyncio.StreamWriter, body: bytes) -> None:
    writer.write(_HEAD + _chunked(body) + _LAST)
    await writer.drain()


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            path = await _read_request(reader)
            if path is None:
                return
            mode = path.strip("/").split("/")[0]
            if not await _mode(mode, writer):
                return
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
        pass
    except asyncio.CancelledError:  # the server is stopping
        pass
    finally:
        writer.close()


async def _mode(mode: str, writer: asyncio.StreamWriter) -> bool:
    """Answer one request; False when the connection is done."""
    if mode == "ok":
        await _reply(writer, _token("pong") + _end())
        return True
    if mode == "liar":
        await _reply(writer, _token("pong") + _end(10**12))
        return True
    if mode == "negative":
        await _reply(writer, _token("pong") + _end(-5))
        return True
    if mode.startswith("shape-"):
        shape = WRONG_SHAPES[int(mode[6:])]
        await _reply(writer, _token("pong") + _event(shape) + _end())
        return True
    if mode == "silence":
        await asyncio.sleep(3600)
        return False
    writer.write(_HEAD)
    if mode == "endless":
        block = _chunked(_token("x") * 1500)
        while True:
            writer.write(block)
            await writer.drain()
    if mode == "hugeline":
        writer.write(_chunked(b"data: {\"x\": \""))
        block = _chunked(b"a" * 65536)
        while True:
            writer.write(block)
            await writer.drain()
    if mode == "hugereply":
        block = _chunked(_token("abcdefgh") * 1000)
        sent = 0
        while sent < 50_000_000:
            writer.write(block)
            sent += len(block)
            await writer.drain()
        writer.write(_chunked(_end()) + _LAST)
        await writer.drain()
        return True
    if mode == "slowloris":
        for byte in _token("x") * 10_000:
            writer.write(_chunked(bytes([byte])))
            await writer.drain()
            await asyncio.sleep(0.05)
    return False


async def main() -> None:
    server = await asyncio.start_server(_serve, "127.0.0.1", 0)
    print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    # the parent closes our stdin (or dies): we stop
    fd = sys.stdin.fileno()
    loop.add_reader(fd, lambda: stop.set() if not os.read(fd, 4096) else None)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
