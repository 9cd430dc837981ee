"""The seam every wire protocol fulfils (one module per protocol in probes/protocols/).

A protocol turns a ProbeTarget into an HTTP request, and each framed event of the
response into StreamEvents. It knows nothing about timing, sinks or alerts: the timing
core (probes/timing.py) stamps the events with their arrival time.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from probes.framing import Frame, SSEEvent
from probes.target import ProbeTarget


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes  # exact bytes sent (Bedrock signs them)


@dataclass(slots=True)
class Usage:
    input_tokens: int | None = None
    output_tokens: int | None = None  # includes reasoning tokens where the API does
    reasoning_tokens: int | None = None
    # A count in the report was impossible (negative, fractional) and was dropped.
    suspect: bool = False


@dataclass(frozen=True, slots=True)
class ToolDelta:
    """A piece of one tool call: its name when the call starts, then argument text.
    `index` tells parallel calls apart (one stream may carry several)."""

    index: int = 0
    name: str | None = None
    arguments: str = ""


@dataclass(slots=True)
class StreamEvent:
    """What one framed event meant. Empty text, reasoning and tool calls = not a token."""

    text: str = ""  # visible answer text
    reasoning: str = ""  # reasoning / thinking text
    usage: Usage | None = None  # latest usage report (cumulative where the API is)
    finish_reason: str | None = None
    error: str | None = None  # mid-stream error → stream_error (or rate_limited)
    rate_limited: bool = False  # the mid-stream error is a throttle (Bedrock)
    terminal: bool = False  # the protocol's end-of-stream marker
    server_timing: dict[str, float] = field(default_factory=dict)
    # Tool-call deltas: the model generated them, so the first one is the first token.
    tools: tuple[ToolDelta, ...] = ()

    @property
    def is_token(self) -> bool:
        return bool(self.text or self.reasoning or self.tools)


class StreamProtocolError(Exception):
    """The stream is malformed for its protocol (bad JSON, impossible event)."""


@dataclass(frozen=True, slots=True)
class ProviderOption:
    """A provider setting only some protocols read, declared by the protocol that reads it:
    the config key (its type, default and docs) and the ProviderSpec option follow from the
    declaration, so a new provider is its module and one registry line."""

    key: str  # under providers[] in the config
    doc: str
    option: str = ""  # its name in ProviderSpec.options; "" = the key
    # text: a string; flag: a boolean, passed on when true; secret_env: the key names an
    # environment variable whose value is passed on as a Secret (never the value itself)
    type: Literal["text", "flag", "secret_env"] = "text"
    default: str | None = None  # for text: the value passed on when the key is unset

    @property
    def name(self) -> str:
        return self.option or self.key


class Protocol(ABC):
    """One wire protocol. Stateless across probes; `new_state` holds per-stream state."""

    kind: ClassVar[str]
    framing: ClassVar[str]  # "sse" | "ndjson" | "eventstream"
    # the provider settings this protocol reads (ProviderSpec.options)
    provider_options: ClassVar[tuple[ProviderOption, ...]] = ()

    @abstractmethod
    def build_request(self, target: ProbeTarget, prompt: str) -> HttpRequest:
        """The streaming request for `prompt` (nonce already applied)."""

    @abstractmethod
    def parse(self, frame: Frame, state: dict[str, Any]) -> StreamEvent | None:
        """One frame → its meaning; None for frames that carry nothing (pings)."""

    def error_message(self, status: int, body: bytes) -> str:
        """A short reason from a non-2xx body (never echoes request headers)."""
        return error_from_body(status, body)


def loads(data: str | bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        snippet = data[:120] if isinstance(data, str) else data[:120].decode("utf-8", "replace")
        raise StreamProtocolError(f"malformed JSON in stream: {exc.__class__.__name__}: {snippet!r}") from None


def sse_json(frame: Frame) -> tuple[str, Any] | None:
    """(event name, parsed JSON data) of an SSE event; None for an event without data."""
    if not isinstance(frame, SSEEvent):
        raise StreamProtocolError("expected an SSE event")
    if not frame.data.strip():
        return None
    return frame.event, loads(frame.data)


def sse_object(frame: Frame) -> tuple[str, dict[str, Any]] | None:
    """Like sse_json, for protocols whose every event is one JSON object (`type` wins)."""
    got = sse_json(frame)
    if got is None:
        return None
    event, obj = got
    if not isinstance(obj, dict):
        raise StreamProtocolError(f"unexpected JSON in stream: {str(obj)[:80]!r}")
    kind = obj.get("type")
    if kind is not None and not isinstance(kind, str):
        raise StreamProtocolError("unexpected JSON shape: `type` is not a string")
    return kind or event, obj


def error_from_body(status: int, body: bytes) -> str:
    """`HTTP 429: Rate limit reached` from the common JSON error shapes."""
    text = body[:2000].decode("utf-8", "replace").strip()
    msg: str | None = None
    try:
        obj = json.loads(text)
    except ValueError:
        obj = None
    if isinstance(obj, list) and obj:
        obj = obj[0]
    if isinstance(obj, dict):
        err = obj.get("error", obj)
        if isinstance(err, dict):
            msg = err.get("message") or err.get("type") or err.get("status")
        elif isinstance(err, str):
            msg = err
        msg = msg or obj.get("message") or obj.get("Message")
    if not msg:
        msg = text.splitlines()[0] if text else ""
    msg = " ".join(str(msg).split())[:200]
    return f"HTTP {status}: {msg}" if msg else f"HTTP {status}"
