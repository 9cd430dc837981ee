"""The streaming phase of a chunked HTTP/1.1 response, read straight off the probe socket.

httpx sends the request and parses the response head. Then every token's socket read
went up through h11 (its chunked reader, receive buffer and state machine) and the
byte streams of httpcore and httpx (four async generators, a trace context and two
exception-mapping contexts per chunk): measured with cProfile at 20 concurrent 64-token
probes, about a third of a probe's CPU was those layers. A chunked body is a size line,
that many bytes and a CRLF, so `ChunkedBody` reads it from the StampedStream itself, each
piece of payload with the stamp of the socket read it came in. run_probe's CPU per 64-token
probe went from 2.2-2.6x a bare asyncio client's (measured in the same run) to 1.7x.

h11 still owns the connection: when the body has ended, it is handed the bytes that
complete the chunk it last saw and a last-chunk, so it reaches the end of the response and
httpcore keeps the connection for reuse as before. A body that does not end (a probe cut
short) leaves h11 mid-response, and httpcore closes the connection, as it always has.

Anything unusual (no `Transfer-Encoding: chunked`, not our network stream, an httpcore
whose internals moved) takes the general path: httpx's own stream.
"""

from __future__ import annotations

import re
import typing
from collections.abc import AsyncGenerator

import h11
import httpcore
import httpx

from probes.netstream import StampedStream, arrival_ns

# RFC 9112 §7.1: chunk-size [ chunk-ext ] CRLF, as h11 takes it (it too ignores extensions).
_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]{1,20})(?:;[^\r\n]*)?[ \t]*")
_HEX = b"0123456789abcdefABCDEF"
_MAX_HEX = 20  # digits of a size (as _SIZE_LINE takes them)
_MAX_LINE = 16 * 1024  # a size or trailer line (h11's own bound for an incomplete event)
_MAX_HANDBACK = 64 * 1024  # bytes kept to give h11 the end of its chunk; past this, no reuse
_READ = 64 * 1024

_SIZE, _DATA, _CRLF, _TRAILER, _DONE = range(5)


class ChunkedDecoder:
    """Transfer-Encoding: chunked → payload bytes, fed in arrival order."""

    __slots__ = ("_line", "_need", "_state", "surplus")

    def __init__(self) -> None:
        self._state = _SIZE
        self.surplus = False
        self._need = 0  # payload bytes of the current chunk still to come (_DATA), or CRLF bytes (_CRLF)
        self._line = b""  # a size or trailer line so far

    @property
    def done(self) -> bool:
        """The last chunk and its trailer section have been read."""
        return self._state == _DONE

    @property
    def at_boundary(self) -> bool:
        """Between chunks (or past the end): what has been fed ends where a chunk does."""
        return (self._state == _SIZE and not self._line) or self._state == _DONE

    def feed(self, data: bytes) -> bytes:
        """The payload carried by `data` (possibly none). Raises httpx.RemoteProtocolError
        on a malformed body; bytes after its end are dropped (`surplus`)."""
        if self._state == _SIZE and not self._line:
            # The shape nearly every token read has: one whole chunk (size line, data,
            # CRLF) from a chunk boundary. A third of the general loop's time per token.
            # Its size line is bare hex digits, told without the regex (anything else,
            # extensions included, takes the general loop, which gives the same result):
            # timed per read in a running client (20 streams; a token's parse starts with
            # cold caches, ~47 us for chunked + SSE + JSON), this step went from ~10.5 us
            # to ~6.9 us.
            end = data.find(b"\r\n")
            if 0 < end <= _MAX_HEX:
                line = data[:end]
                if not line.strip(_HEX):  # every byte a hex digit
                    start = end + 2
                    stop = start + int(line, 16)
                    if stop > start and len(data) == stop + 2 and data.endswith(b"\r\n"):
                        return data[start:stop]
        pos, n = 0, len(data)
        out: list[bytes] = []
        while pos < n:
            state = self._state
            if state == _DATA:
                take = min(self._need, n - pos)
                out.append(data[pos:pos + take])
                pos += take
                self._need -= take
                if not self._need:
                    self._state, self._need = _CRLF, 2
            elif state in (_SIZE, _TRAILER):
                if self._line:  # a line begun in an earlier read (its CR may be there too)
                    data, pos, n, self._line = self._line + data[pos:], 0, len(self._line) + n - pos, b""
                end = data.find(b"\r\n", pos)
                if end < 0:
                    self._line = data[pos:]
                    if len(self._line) > _MAX_LINE:
                        raise httpx.RemoteProtocolError("chunked body: line too long")
                    break
                line = data[pos:end]
                pos = end + 2
                if state == _TRAILER:
                    if not line:
                        self._state = _DONE
                    continue
                m = _SIZE_LINE.fullmatch(line)
                if m is None:
                    raise httpx.RemoteProtocolError(f"illegal chunk header: {line[:40]!r}")
                size = int(m.group(1), 16)
                if size:
                    self._state, self._need = _DATA, size
                else:
                    self._state = _TRAILER
            elif state == _CRLF:
                # CR then LF, possibly split across reads
                want = b"\r\n"[2 - self._need:]
                got = data[pos:pos + len(want)]
                if got != want[:len(got)]:
                    raise httpx.RemoteProtocolError(f"malformed chunk footer: {got!r}")
                pos += len(got)
                self._need -= len(got)
                if not self._need:
                    self._state = _SIZE
            else:
                self.surplus = True  # bytes after the body: the connection is not reused
                break
        return out[0] if len(out) == 1 else b"".join(out)


class ChunkedBody:
    """(arrival stamp, payload) of each socket read of a chunked response body."""

    def __init__(self, net: StampedStream, conn: h11.Connection, prefix: bytes) -> None:
        self._net = net
        self._conn = conn
        self._prefix = prefix
        self._decoder = ChunkedDecoder()
        # h11 has seen the prefix only: the bytes that follow it up to the first chunk
        # boundary (or the body's end), to hand over when the body is done
        self._handback: bytearray | None = bytearray()
        self._handback_ends_body = False

    async def pieces(self) -> AsyncGenerator[tuple[int, bytes], None]:
        decoder, net = self._decoder, self._net
        # the prefix came with the head, in the read that completed it
        payload = decoder.feed(self._prefix)
        if payload:
            yield net.last_read_ns, payload
        collecting = not decoder.at_boundary
        self._handback_ends_body = decoder.done
        while not decoder.done:
            try:
                data = await net.read(_READ)
            except httpcore.ReadError as exc:
                raise httpx.ReadError(str(exc)) from exc
            if not data:
                raise httpx.RemoteProtocolError(
                    "peer closed connection without sending complete message body (incomplete chunked read)")
            if collecting:
                self._keep(data)
            payload = decoder.feed(data)
            if collecting and decoder.at_boundary:
                collecting = False
                self._handback_ends_body = decoder.done
            if payload:
                yield net.last_read_ns, payload
        self._finish()

    def _keep(self, data: bytes) -> None:
        if self._handback is not None:
            self._handback += data
            if len(self._handback) > _MAX_HANDBACK:
                self._handback = None  # an endless first chunk: no reuse, not unbounded memory

    def _finish(self) -> None:
        """Let h11 reach the end of the response, so httpcore may reuse the connection."""
        if self._handback is None or self._decoder.surplus:
            return
        conn = self._conn
        try:
            tail = bytes(self._handback) + (b"" if self._handback_ends_body else b"0\r\n\r\n")
            if tail:  # (b"" would tell h11 the peer closed)
                conn.receive_data(tail)
            while conn.their_state is h11.SEND_BODY:
                event = conn.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    break
        except h11.ProtocolError:
            pass  # h11 stays mid-response: httpcore closes the connection instead


def chunked_body(resp: httpx.Response) -> ChunkedBody | None:
    """The lean reader for this response's body, or None for httpx's own stream."""
    stream = resp.extensions.get("network_stream")
    if not isinstance(stream, StampedStream) or resp.headers.get("transfer-encoding", "").lower() != "chunked":
        return None
    net: StampedStream = stream
    # httpx's client stream → its transport's stream → httpcore's pool stream → its
    # HTTP/1.1 byte stream → the connection, whose h11 state holds the bytes that came
    # with the head (tests/probes/test_chunked.py fails if a new httpx or httpcore moves them).
    transport_stream = getattr(resp.stream, "_stream", None)
    pool_stream = getattr(transport_stream, "_httpcore_stream", None)
    conn_stream = getattr(pool_stream, "_stream", None)
    http11 = getattr(conn_stream, "_connection", None)
    conn = getattr(http11, "_h11_state", None)
    if not isinstance(conn, h11.Connection) or getattr(http11, "_network_stream", None) is not net \
            or conn.their_state is not h11.SEND_BODY:
        return None
    prefix, closed = conn.trailing_data
    if closed:
        return None
    return ChunkedBody(net, conn, bytes(prefix))


def body_pieces(resp: httpx.Response) -> AsyncGenerator[tuple[int, bytes], None]:
    """(arrival stamp, payload) of each read of a streaming response's body: the lean
    reader where it applies, else httpx's stream stamped with the read each chunk came in."""
    body = chunked_body(resp)
    if body is not None:
        return body.pieces()
    return _general(resp)


async def _general(resp: httpx.Response) -> AsyncGenerator[tuple[int, bytes], None]:
    net = resp.extensions.get("network_stream")
    # the transport's byte stream itself: aiter_raw re-chunks and counts on top
    async for chunk in typing.cast(httpx.AsyncByteStream, resp.stream):
        yield arrival_ns(net), chunk  # when these bytes came off the socket
