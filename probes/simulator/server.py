"""The simulator's HTTP/1.1 server (asyncio + h11): routes each provider's streaming path
to its encoder and paces tokens against absolute deadlines, so hundreds of concurrent
streams don't accumulate drift. Optionally logs when each token was actually written."""

from __future__ import annotations

import asyncio
import collections
import functools
import itertools
import json
import random
import re
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote

import h11

from core.durations import parse_duration
from probes.simulator.encoders import (
    AnthropicEncoder,
    BedrockEncoder,
    Encoder,
    GeminiEncoder,
    OllamaEncoder,
    OpenAIChatEncoder,
    ResponsesEncoder,
    Usage,
)
from probes.simulator.inspect import fragments, requested_tools, take_images, tool_arguments
from probes.simulator.scenario import Fault, Scenario, Script

_GEMINI = re.compile(r"/models/([^/:]+):streamGenerateContent")
_BEDROCK = re.compile(r"/model/([^/]+)/converse-stream")
_AZURE = re.compile(r"/openai/deployments/([^/]+)/chat/completions")
_FILLER = (" and", " the", " probe", " is", " fine", " today", ".", " ok")
_MAX_REQUEST = 1 << 20
# Kept in memory for tests and the in-process benchmark: the latest ones only, so a
# simulator serving for days (the demo, `llm-vitals run` with the simulator) stays flat.
KEPT_RECORDS = 10_000
KEPT_REQUESTS = 1_000


def _encoder_for(path: str, body: dict[str, Any], rid: str) -> Encoder | None:
    model = str(body.get("model") or "unknown")
    if m := _AZURE.search(path):
        return OpenAIChatEncoder(unquote(m.group(1)), rid, azure=True)
    if path.endswith("/chat/completions"):
        return OpenAIChatEncoder(model, rid)
    if path.endswith("/responses"):
        return ResponsesEncoder(model, rid)
    if path.endswith("/messages"):
        return AnthropicEncoder(model, rid)
    if m := _GEMINI.search(path):
        return GeminiEncoder(unquote(m.group(1)), rid)
    if m := _BEDROCK.search(path):
        return BedrockEncoder(unquote(m.group(1)), rid)
    if path.endswith("/api/chat"):
        return OllamaEncoder(model, rid)
    return None


class TruthLog:
    """When each token hit the socket (time.time_ns()), buffered and flushed off the hot path.
    Without a file, the latest KEPT_RECORDS stay in memory (`records`)."""

    def __init__(self, path: str | Path | None) -> None:
        self.records: collections.deque[dict[str, Any]] = collections.deque(maxlen=KEPT_RECORDS)
        self._fh: IO[str] | None = open(path, "a") if path else None  # noqa: SIM115
        self._pending: list[str] = []
        self.keep_in_memory = path is None

    def token(self, rid: str, model: str, protocol: str, index: int, t_ns: int, write_ns: int | None = None) -> None:
        """t_ns: wall clock just after the token's write returned; write_ns: just before it
        began (a client's arrival stamp lies between them, unless this process was paused
        between the write and t_ns: then only write_ns bounds it)."""
        rec: dict[str, Any] = {"request_id": rid, "model": model, "protocol": protocol,
                               "event": "first_token" if index == 0 else "token", "index": index, "t_ns": t_ns}
        if write_ns is not None:
            rec["write_ns"] = write_ns
        if self.keep_in_memory:
            self.records.append(rec)
        if self._fh is not None:
            self._pending.append(json.dumps(rec))
            if len(self._pending) >= 2000:
                self.flush()

    def flush(self) -> None:
        if self._fh is not None and self._pending:
            self._fh.write("\n".join(self._pending) + "\n")
            self._fh.flush()
            self._pending.clear()

    def close(self) -> None:
        self.flush()
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class Simulator:
    """`async with Simulator(scenario) as sim:` serves on sim.url until the block ends."""

    def __init__(self, scenario: Scenario | None = None, host: str = "127.0.0.1", port: int = 0,
                 truth_log: str | Path | None = None, seed: int | None = None) -> None:
        self.scenario = scenario or Scenario()
        self.host = host
        self.port = port
        self.truth = TruthLog(truth_log)
        self._rng = random.Random(seed)
        self._ids = itertools.count(1)
        self._server: asyncio.Server | None = None
        self._started = 0.0
        self._flusher: asyncio.Task[None] | None = None
        # path, headers, body of the latest requests (tests)
        self.requests: collections.deque[dict[str, Any]] = collections.deque(maxlen=KEPT_REQUESTS)
        self._conns: set[asyncio.Task[Any]] = set()
        n = self.scenario.max_streams
        self._slots = asyncio.Semaphore(n) if n is not None else None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._started = loop.time()
        self._server = await asyncio.start_server(self._serve, self.host, self.port, backlog=2048)
        self.port = self._server.sockets[0].getsockname()[1]
        self._flusher = asyncio.create_task(self._flush_loop())

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._conns):
            task.cancel()
        if self._conns:
            await asyncio.wait(list(self._conns), timeout=2)
        if self._flusher is not None:
            self._flusher.cancel()
        self.truth.close()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            self.truth.flush()

    # -- connection handling --------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._conns.add(task)
            task.add_done_callback(self._conns.discard)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_REQUEST)
        try:
            while True:
                request, body = await self._read_request(conn, reader)
                if request is None:
                    break
                keep = await self._respond(conn, writer, request, body)
                if not keep or conn.our_state is not h11.DONE:
                    break
                conn.start_next_cycle()
        except (ConnectionError, h11.RemoteProtocolError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            if not writer.is_closing():
                writer.close()

    async def _read_request(self, conn: h11.Connection, reader: asyncio.StreamReader) -> tuple[h11.Request | None, bytes]:
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                conn.receive_data(data)
                if not data and conn.their_state is h11.IDLE:
                    return None, b""
                continue
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return request, bytes(body)
            elif isinstance(event, h11.ConnectionClosed):
                return None, b""

    async def _respond(self, conn: h11.Connection, writer: asyncio.StreamWriter, req: h11.Request, raw: bytes) -> bool:
        path = req.target.decode()
        headers = {k.decode().lower(): v.decode() for k, v in req.headers}
        if req.method == b"GET" and path in ("/health", "/healthz"):
            return self._simple(conn, writer, 200, {"status": "ok"})
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return self._simple(conn, writer, 400, {"error": {"message": "request body is not JSON"}})
        rid = f"sim-{next(self._ids)}"
        body = body if isinstance(body, dict) else {}
        enc = _encoder_for(path.split("?", 1)[0], body, rid)
        tools = requested_tools(body)
        kept, images = take_images(body)
        self.requests.append({"path": path, "headers": headers, "body": kept, "request_id": rid,
                              "tools": tools, "images": images})
        if enc is None:
            return self._simple(conn, writer, 404, {"error": {"message": f"no such route {path}"}})
        if self._slots is None:
            return await self._answer(conn, writer, enc, headers, tools, rid)
        async with self._slots:  # beyond max_streams: queued, as a server past its batch limit
            return await self._answer(conn, writer, enc, headers, tools, rid)

    async def _answer(self, conn: h11.Connection, writer: asyncio.StreamWriter, enc: Encoder,
                      headers: dict[str, str], tools: list[str], rid: str) -> bool:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        script, faults = self.scenario.script_for(enc.model, t0 - self._started)
        script, faults = self._overrides(script, faults, headers)
        fault = next((f for f in faults if self._rng.random() < f.probability), None)
        # A request that offers tools is answered with a call to the first one (or to the
        # tool `x-sim-tool` names: a wrong tool, for tests), arguments from `x-sim-tool-args`.
        call = None
        if tools and headers.get("x-sim-tool") != "none":
            call = (headers.get("x-sim-tool") or tools[0], headers.get("x-sim-tool-args"))
        return await self._stream(conn, writer, enc, script, fault, t0, rid, call)

    def _overrides(self, script: Script, faults: list[Fault], headers: dict[str, str]) -> tuple[Script, list[Fault]]:
        upd: dict[str, Any] = {}
        for key in ("ttft", "itl", "reasoning_itl"):
            if f"x-sim-{key.replace('_', '-')}" in headers:
                upd[key] = parse_duration(headers[f"x-sim-{key.replace('_', '-')}"])
        for key in ("tokens", "reasoning_tokens"):
            if f"x-sim-{key.replace('_', '-')}" in headers:
                upd[key] = int(headers[f"x-sim-{key.replace('_', '-')}"])
        if upd:
            script = script.model_copy(update=upd)
        if "x-sim-fault" in headers:
            extra: dict[str, Any] = {"kind": headers["x-sim-fault"]}
            if "x-sim-after-tokens" in headers:
                extra["after_tokens"] = int(headers["x-sim-after-tokens"])
            if "x-sim-fault-duration" in headers:
                extra["duration"] = parse_duration(headers["x-sim-fault-duration"])
            faults = [Fault(**extra)]
        return script, faults

    def _simple(self, conn: h11.Connection, writer: asyncio.StreamWriter, status: int, obj: Any,
                extra: list[tuple[str, str]] | None = None) -> bool:
        data = json.dumps(obj).encode()
        hdrs = [("content-type", "application/json"), ("content-length", str(len(data))), *(extra or [])]
        writer.write(conn.send(h11.Response(status_code=status, headers=hdrs)) + conn.send(h11.Data(data=data))
                     + conn.send(h11.EndOfMessage()))
        return True

    async def _stream(self, conn: h11.Connection, writer: asyncio.StreamWriter, enc: Encoder, script: Script,
                      fault: Fault | None, t0: float, rid: str, call: tuple[str, str | None] | None = None) -> bool:
        loop = asyncio.get_running_loop()
        kind = fault.kind if fault else None
        if kind == "stall_before_headers":
            await asyncio.sleep(fault.duration)  # type: ignore[union-attr]
            return False
        if kind in ("http_429", "http_500", "http_503", "http_529"):
            status = int(kind[5:])
            extra = [("retry-after", f"{fault.retry_after:g}")] if status == 429 else []  # type: ignore[union-attr]
            extra.append(("x-request-id", rid))
            return self._simple(conn, writer, status, enc.error_body(status), extra)
        if kind == "slow_headers":
            await asyncio.sleep(fault.duration)  # type: ignore[union-attr]
            t0 = loop.time()
        enc.tool_mode = call is not None
        headers = [("content-type", enc.content_type), ("x-request-id", rid), ("cache-control", "no-cache"),
                   ("x-ratelimit-remaining-requests", "4999"), ("x-ratelimit-remaining-tokens", "159000")]
        head = conn.send(h11.Response(status_code=200, headers=headers))
        preamble = enc.preamble()  # role-only chunk, message_start...: sent with the headers
        writer.write(head + conn.send(h11.Data(data=preamble)) if preamble else head)

        rng = self._rng
        jitter = script.jitter

        def jittered(x: float) -> float:
            return max(0.0, x * (1 + rng.uniform(-jitter, jitter))) if jitter else x

        # (is it reasoning, what to write): the writes are made when their deadline comes
        plan: list[tuple[bool, Callable[[], bytes]]] = [
            (True, functools.partial(enc.token, "thinking", True))] * script.reasoning_tokens
        tail = 0.0  # a whole tool call is one event; the rest of the reply's time follows it
        if call is None:
            words = [script.reply] + [_FILLER[i % len(_FILLER)] for i in range(script.tokens - 1)]
            plan += [(False, functools.partial(enc.token, w, False)) for w in words]
        elif enc.whole_tool_calls:
            plan.append((False, functools.partial(enc.tool_whole, call[0], _call_args(call[1]))))
            tail = script.itl * (script.tokens - 1)
        else:
            pieces = fragments(call[1], script.tokens - 1) if call[1] is not None else \
                tool_arguments(script.tokens - 1)[1]
            plan.append((False, functools.partial(enc.tool_start, call[0])))
            plan += [(False, functools.partial(enc.tool_delta, p)) for p in pieces]
        deadline = t0 + jittered(script.ttft)
        for i, (reasoning, write) in enumerate(plan):
            if i:
                gap = script.reasoning_itl if reasoning else script.itl
                deadline += jittered(gap)
            delay = deadline - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if fault is not None and i == fault.after_tokens:
                done = await self._mid_stream_fault(conn, writer, enc, fault)
                if done is not None:
                    return done
                deadline = loop.time()
            data = conn.send(h11.Data(data=write()))
            before = time.time_ns()
            writer.write(data)
            self.truth.token(rid, enc.model, enc.protocol, i, time.time_ns(), before)
        if tail > 0:
            await asyncio.sleep(max(0.0, deadline + tail - loop.time()))
        usage = Usage(21, len(plan), script.reasoning_tokens) if script.usage else None
        reason = "stop" if call is None else "tool_calls"
        writer.write(conn.send(h11.Data(data=enc.finish(usage, reason))) + conn.send(h11.EndOfMessage()))
        await writer.drain()
        return True

    async def _mid_stream_fault(self, conn: h11.Connection, writer: asyncio.StreamWriter, enc: Encoder,
                                fault: Fault) -> bool | None:
        """Strike a mid-stream fault. None = carry on streaming; a bool = the response is over."""
        if fault.kind == "stall_mid_stream":
            await asyncio.sleep(fault.duration)
            return None
        if fault.kind == "truncate":  # clean end of the HTTP body, but no terminal event
            writer.write(conn.send(h11.EndOfMessage()))
            return True
        if fault.kind == "disconnect":
            writer.transport.abort()
            return False
        payload = {"malformed_json": enc.malformed, "error_event": enc.error_event, "bad_crc": enc.bad_crc}.get(fault.kind)
        if payload is None:
            return None
        writer.write(conn.send(h11.Data(data=payload())) + conn.send(h11.EndOfMessage()))
        return True


def _call_args(raw: str | None) -> dict[str, Any]:
    """A whole call's arguments: `x-sim-tool-args` when it is a JSON object, else the default."""
    if raw is not None:
        try:
            value = json.loads(raw)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return value
    return tool_arguments(1)[0]

