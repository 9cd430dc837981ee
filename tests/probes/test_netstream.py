"""The stamped socket transport: arrival times come from the kernel, not from when our
event loop got round to the socket, over plain TCP and over TLS; writes coalesce.

The server runs in its own thread (blocking sockets, its own clock), so blocking our
event loop delays only the client, exactly like a monitor under load.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.result import Outcome
from probes.httpclient import probe_client
from probes.netstream import _enable_kernel_stamps
from probes.runner import run_probe
from probes.target import ProbeLimits, ProbeSpec, ProbeTarget, ProviderSpec
from tests.factories import REPO

TOL = 0.03


def _kernel_stamps_supported() -> bool:
    with socket.socket() as s:
        return _enable_kernel_stamps(s)


def _chunk(text: str) -> bytes:
    obj = {"id": "c1", "object": "chat.completion.chunk",
           "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
    event = f"data: {json.dumps(obj)}\n\n".encode()
    return f"{len(event):x}\r\n".encode() + event + b"\r\n"


class ThreadServer:
    """Answers one streaming chat request per connection with (delay, text) tokens."""

    def __init__(self, tokens: list[tuple[float, str]], tls: ssl.SSLContext | None = None) -> None:
        self.tokens = tokens
        self.tls = tls
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.request_reads: list[int] = []  # recv() calls it took to read each request
        self.wrote_ns: list[int] = []  # perf_counter_ns after each token write
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                self._answer(conn)
            except OSError:
                pass
            finally:
                conn.close()

    def _answer(self, raw: socket.socket) -> None:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = self.tls.wrap_socket(raw, server_side=True) if self.tls else raw
        buf, reads = b"", 0
        while b"\r\n\r\n" not in buf or len(buf.split(b"\r\n\r\n", 1)[1]) < self._length(buf):
            data = conn.recv(65536)
            if not data:
                return
            buf += data
            reads += 1
        self.request_reads.append(reads)
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n")
        for delay, text in self.tokens:
            time.sleep(delay)
            conn.sendall(_chunk(text))
            self.wrote_ns.append(time.perf_counter_ns())
        done = b"data: [DONE]\n\n"
        conn.sendall(f"{len(done):x}\r\n".encode() + done + b"\r\n0\r\n\r\n")
        time.sleep(0.05)

    @staticmethod
    def _length(buf: bytes) -> int:
        for line in buf.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                return int(line.split(b":", 1)[1])
        return 0

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    d = tmp_path_factory.mktemp("tls")
    crt, key = d / "c.pem", d / "k.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    yield crt, key


def _target(url: str) -> ProbeTarget:
    return ProbeTarget(ProviderSpec("p", "openai_compatible", url + "/v1"), "m", ProbeSpec(), timeout=5)


async def _probe_with_blocked_loop(url: str, client: httpx.AsyncClient, block: tuple[float, float]):  # type: ignore[no-untyped-def]
    async def hog() -> None:
        await asyncio.sleep(block[0])
        time.sleep(block[1] - block[0])  # the loop is stuck: a busy monitor

    started = time.perf_counter_ns()
    hogger = asyncio.create_task(hog())
    r = await run_probe(client, _target(url))
    await hogger
    return r, started


@pytest.mark.skipif(not _kernel_stamps_supported(), reason="no SO_TIMESTAMPNS on this platform")
async def test_ttft_is_the_kernel_arrival_time_while_the_loop_is_blocked() -> None:
    # first token at 0.15 s arrives while our loop is blocked from 0.05 s to 0.4 s
    srv = ThreadServer([(0.15, "po"), (0.4, "ng")])
    try:
        async with probe_client(limits=httpx.Limits(max_connections=2)) as client:
            r, _ = await _probe_with_blocked_loop(f"http://127.0.0.1:{srv.port}", client, (0.05, 0.4))
    finally:
        srv.close()
    assert r.outcome is Outcome.OK, r.error
    assert r.text == "pong"
    assert r.ttft == pytest.approx(0.15, abs=TOL)  # a userland stamp would say >= 0.4
    assert r.itls[0] == pytest.approx(0.4, abs=TOL)
    assert srv.request_reads == [1]  # head and body left in one send


@pytest.mark.skipif(not _kernel_stamps_supported(), reason="no SO_TIMESTAMPNS on this platform")
async def test_tls_probe_times_phases_and_stamps_at_arrival(cert: tuple[Path, Path]) -> None:
    crt, key = cert
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(crt, key)
    srv = ThreadServer([(0.15, "po"), (0.4, "ng")], tls=server_ctx)
    client_ctx = ssl.create_default_context(cafile=str(crt))
    try:
        async with probe_client(verify=client_ctx, limits=httpx.Limits(max_connections=2)) as client:
            r, _ = await _probe_with_blocked_loop(f"https://127.0.0.1:{srv.port}", client, (0.05, 0.4))
            again = await run_probe(client, _target(f"https://127.0.0.1:{srv.port}"))
    finally:
        srv.close()
    assert r.outcome is Outcome.OK, r.error
    assert r.text == "pong"
    assert r.connect is not None and r.connect > 0
    assert r.tls is not None and r.tls > 0
    assert r.ttft == pytest.approx(0.15, abs=TOL)
    assert r.itls[0] == pytest.approx(0.4, abs=TOL)
    assert again.outcome is Outcome.OK, again.error


async def test_tls_with_an_untrusted_certificate_is_a_connect_error(cert: tuple[Path, Path]) -> None:
    crt, key = cert
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(crt, key)
    srv = ThreadServer([(0.0, "x")], tls=server_ctx)
    try:
        async with probe_client(limits=httpx.Limits(max_connections=2)) as client:  # system CAs only
            r = await run_probe(client, _target(f"https://127.0.0.1:{srv.port}"))
    finally:
        srv.close()
    assert r.outcome is Outcome.CONNECT_ERROR
    assert r.error and "certificate" in r.error.lower()


async def test_a_long_stream_through_flow_control_loses_nothing() -> None:
    tokens = [(0.0, f"t{i} ") for i in range(3000)]  # ~600 KB arriving faster than we parse
    srv = ThreadServer(tokens)
    keep_all = dataclasses.replace(_target(f"http://127.0.0.1:{srv.port}"), limits=ProbeLimits(max_reply_chars=1 << 20))
    try:
        async with probe_client(limits=httpx.Limits(max_connections=2)) as client:
            r = await run_probe(client, keep_all)
    finally:
        srv.close()
    assert r.outcome is Outcome.OK, r.error
    assert r.token_chunks == 3000
    assert r.text.startswith("t0 t1 ") and r.text.endswith("t2999 ")


@pytest.mark.skipif(not _kernel_stamps_supported(), reason="no SO_TIMESTAMPNS on this platform")
async def test_an_overloaded_loop_still_stamps_every_token_at_arrival(tmp_path: Path) -> None:
    # 24 streams with a token every 25 ms each, and 3 ms of work per token: three times
    # more work than one core does, so the loop's iterations run for hundreds of ms. A
    # socket left unread that long has its segments merged by the kernel, which keeps
    # the last stamp only; the read-ahead polls the sockets between probe steps instead.
    (tmp_path / "s.yaml").write_text("defaults: {ttft: 100ms, itl: 25ms, jitter: 0, tokens: 12}\n")
    truth_log = tmp_path / "truth.jsonl"
    sim = subprocess.Popen(
        [sys.executable, "-m", "probes.simulator", "--port", "0", "--scenario", str(tmp_path / "s.yaml"),
         "--truth-log", str(truth_log), "--exit-with-parent"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO,
    )
    assert sim.stdout is not None and sim.stdin is not None
    url = "http://" + json.loads(sim.stdout.readline())["listening"]
    offset_ns = time.time_ns() - time.perf_counter_ns()
    stamps: dict[str, list[int]] = {}

    async def one(client: httpx.AsyncClient) -> None:
        got: list[int] = []

        def busy(t: int) -> None:
            got.append(t)
            end = time.perf_counter() + 0.003
            while time.perf_counter() < end:
                pass

        r = await run_probe(client, _target(url), on_token=busy)
        assert r.outcome is Outcome.OK, r.error
        assert r.request_id
        stamps[r.request_id] = got

    try:
        async with probe_client(limits=httpx.Limits(max_connections=64)) as client:
            await asyncio.gather(*(one(client) for _ in range(24)))
    finally:
        sim.stdin.close()
        sim.wait(10)
    wrote: dict[str, dict[int, int]] = {}
    for line in truth_log.read_text().splitlines():
        rec = json.loads(line)
        wrote.setdefault(rec["request_id"], {})[rec["index"]] = rec["t_ns"]
    late_ms = sorted(
        (offset_ns + t - wrote[rid][i]) / 1e6 for rid, got in stamps.items() for i, t in enumerate(got)
    )
    assert len(late_ms) == 24 * 12
    # merged segments would make a share of tokens a whole gap (25 ms) late
    assert late_ms[len(late_ms) // 2] < 3.0, late_ms[len(late_ms) // 2]
    assert late_ms[int(0.98 * len(late_ms))] < 10.0, late_ms[-10:]
