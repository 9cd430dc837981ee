"""Incremental stream framing: bytes as they arrive → complete frames.

Each decoder is fed raw network chunks in arrival order and returns the frames those
bytes completed. Splitting happens on bytes, never with str.splitlines() (which also
splits on U+2028 inside JSON strings; docs/wire-formats.md §0.1/§0.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from botocore.eventstream import EventStreamMessage


_BOM = "\ufeff"
DEFAULT_MAX_LINE = 1 << 20


class FramingError(Exception):
    """The byte stream cannot be framed (bad CRC, oversized frame, bad encoding)."""


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str  # "message" when the stream sent no `event:` line
    data: str
    id: str | None = None
    # Non-standard fields (e.g. old llama.cpp `error:`) are surfaced, not dropped.
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class EventStreamFrame:
    headers: dict[str, object]
    payload: bytes

    @property
    def message_type(self) -> str:
        return str(self.headers.get(":message-type", "event"))

    @property
    def event_type(self) -> str:
        return str(
            self.headers.get(":event-type")
            or self.headers.get(":exception-type")
            or self.headers.get(":error-code")
            or ""
        )


Frame = SSEEvent | str | EventStreamFrame


class Decoder(Protocol):
    def feed(self, chunk: bytes) -> list[Frame]: ...

    def close(self) -> list[Frame]:
        """End of stream: flush whatever a stream without a final blank line left."""
        ...


def _too_long(max_line: int) -> FramingError:
    return FramingError(f"stream line over {max_line} bytes")


class _LineSplitter:
    """Splits bytes into lines on CR, LF or CRLF, even when CR and LF arrive apart.

    A line longer than `max_line` is a FramingError as soon as that many bytes of it are
    here: a line without end must not grow a buffer without end."""

    __slots__ = ("_buf", "_max", "_skip_lf")

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        self._buf = bytearray()
        self._skip_lf = False
        self._max = max_line

    def feed(self, chunk: bytes) -> list[bytes]:
        lines: list[bytes] = []
        buf = self._buf
        start = 0
        n = len(chunk)
        if self._skip_lf and n:
            self._skip_lf = False
            if chunk[0] == 0x0A:
                start = 1
        # Fast path: scan for the next CR or LF with bytes.find on each.
        while start < n:
            lf = chunk.find(b"\n", start)
            cr = chunk.find(b"\r", start, lf if lf >= 0 else n)
            if cr >= 0:
                buf += chunk[start:cr]
                lines.append(bytes(buf))
                buf.clear()
                if cr + 1 < n:
                    start = cr + 2 if chunk[cr + 1] == 0x0A else cr + 1
                else:
                    self._skip_lf = True
                    start = n
            elif lf >= 0:
                buf += chunk[start:lf]
                lines.append(bytes(buf))
                buf.clear()
                start = lf + 1
            else:
                buf += chunk[start:]
                start = n
        if len(buf) > self._max or (lines and max(map(len, lines)) > self._max):
            raise _too_long(self._max)
        return lines

    def flush(self) -> bytes | None:
        if self._buf:
            rest = bytes(self._buf)
            self._buf.clear()
            return rest
        return None


class SSEDecoder:
    """WHATWG text/event-stream, as the providers actually send it (docs/wire-formats.md §0.1)."""

    __slots__ = ("_data", "_event", "_extra", "_first", "_id", "_lines", "_max", "_size")

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        self._lines = _LineSplitter(max_line)
        self._max = max_line  # one event's data lines together, too
        self._size = 0
        self._event: str | None = None
        self._data: list[str] = []
        self._id: str | None = None
        self._extra: list[tuple[str, str]] = []
        self._first = True

    def feed(self, chunk: bytes) -> list[Frame]:
        fast = self._fast(chunk)
        if fast is not None:
            return fast
        out: list[Frame] = []
        for raw in self._lines.feed(chunk):
            ev = self._line(raw)
            if ev is not None:
                out.append(ev)
        return out

    def _fast(self, chunk: bytes) -> list[Frame] | None:
        """The shape nearly every token arrives in: whole `data: ...` events, LF-ended,
        with nothing pending. Anything else (CR, comments, other fields, multi-line data,
        a partial event, the first bytes with a possible BOM) takes the general path."""
        if (
            self._first
            or self._data
            or self._extra
            or self._event is not None
            or self._lines._buf
            or self._lines._skip_lf
            or not chunk.endswith(b"\n\n")
            or b"\r" in chunk
            or len(chunk) > self._max
        ):
            return None
        out: list[Frame] = []
        for block in chunk[:-2].split(b"\n\n"):
            if not block.startswith(b"data:") or b"\n" in block:
                return None  # nothing consumed yet: the general path starts from scratch
            value = block[6:] if block[5:6] == b" " else block[5:]
            try:
                out.append(SSEEvent("message", value.decode("utf-8"), self._id))
            except UnicodeDecodeError as exc:
                raise FramingError(f"invalid UTF-8 in event stream: {exc}") from None
        return out

    def close(self) -> list[Frame]:
        out: list[Frame] = []
        rest = self._lines.flush()
        if rest is not None:
            self._line(rest)
        ev = self._dispatch()
        if ev is not None:
            out.append(ev)
        return out

    def _line(self, raw: bytes) -> SSEEvent | None:
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FramingError(f"invalid UTF-8 in event stream: {exc}") from None
        if self._first:
            self._first = False
            if line.startswith(_BOM):
                line = line[1:]
        if not line:
            return self._dispatch()
        if line[0] == ":":
            return None  # comment / keep-alive (OpenRouter ": OPENROUTER PROCESSING")
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._size += len(value)
            if self._size > self._max:
                raise _too_long(self._max)
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
        elif name == "retry":
            pass
        else:
            self._extra.append((name, value))
        return None

    def _dispatch(self) -> SSEEvent | None:
        if not self._data and not self._extra:
            self._event = None
            return None
        ev = SSEEvent(
            event=self._event or "message",
            data="\n".join(self._data),
            id=self._id,
            extra=tuple(self._extra),
        )
        self._event = None
        self._data = []
        self._extra = []
        self._size = 0
        return ev


class NDJSONDecoder:
    """Newline-delimited JSON (Ollama /api/chat): one frame per non-empty line."""

    __slots__ = ("_lines",)

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        self._lines = _LineSplitter(max_line)

    def feed(self, chunk: bytes) -> list[Frame]:
        return [self._decode(raw) for raw in self._lines.feed(chunk) if raw.strip()]

    def close(self) -> list[Frame]:
        rest = self._lines.flush()
        return [self._decode(rest)] if rest and rest.strip() else []

    @staticmethod
    def _decode(raw: bytes) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FramingError(f"invalid UTF-8 in NDJSON stream: {exc}") from None


class EventStreamDecoder:
    """AWS `application/vnd.amazon.eventstream` via botocore's own buffer (CRC-checked)."""

    __slots__ = ("_buf", "_max")

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        # imported here: botocore is 16 MB of RSS that only Bedrock targets need
        # (protocols/bedrock.py loads it when the config names one)
        from botocore.eventstream import EventStreamBuffer

        self._buf = EventStreamBuffer()
        self._max = max_line  # one frame

    def feed(self, chunk: bytes) -> list[Frame]:
        self._buf.add_data(chunk)
        out: list[Frame] = []
        try:
            for msg in self._buf:
                out.append(self._frame(msg))
        except Exception as exc:  # botocore raises ParserError subclasses (CRC, lengths)
            raise FramingError(f"bad event-stream frame: {type(exc).__name__}: {exc}") from None
        if self.pending_bytes > self._max:
            raise FramingError(f"event-stream frame over {self._max} bytes")
        return out

    def close(self) -> list[Frame]:
        return []

    @property
    def pending_bytes(self) -> int:
        return len(self._buf._data)

    @staticmethod
    def _frame(msg: EventStreamMessage) -> EventStreamFrame:
        return EventStreamFrame(headers=dict(msg.headers), payload=bytes(msg.payload))


def new_decoder(framing: str, max_line: int = DEFAULT_MAX_LINE) -> Decoder:
    if framing == "sse":
        return SSEDecoder(max_line)
    if framing == "ndjson":
        return NDJSONDecoder(max_line)
    if framing == "eventstream":
        return EventStreamDecoder(max_line)
    raise ValueError(f"unknown framing {framing!r}")
