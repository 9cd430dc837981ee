"""What to probe: plain, immutable specs built from the config (daemon/config.py).

The probe path depends on these and never on the config models, so probes/ can be
used (and tested) without the daemon.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from core.secrets import Secret


@dataclass(frozen=True)
class Expectation:
    contains: str | None = None
    regex: str | None = None
    json: bool = False
    min_tokens: int | None = None
    tool_call: str | None = None  # the reply's first tool call must call this tool


@dataclass(frozen=True)
class ImageSpec:
    """An image a vision probe sends (checked at config load: probes/images.py)."""

    media_type: str  # image/png, image/jpeg, image/gif, image/webp
    data: bytes = field(repr=False)

    @cached_property
    def b64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")

    @property
    def format(self) -> str:
        """png, jpeg, gif, webp (Bedrock's `format`)."""
        return self.media_type.split("/", 1)[1]


@dataclass(frozen=True)
class ToolSpec:
    """A function the model may call (JSON-Schema `parameters`, as a JSON string so the
    spec stays hashable)."""

    name: str
    description: str = ""
    parameters_json: str = '{"type": "object", "properties": {}}'

    @property
    def parameters(self) -> dict[str, Any]:
        value = json.loads(self.parameters_json)
        return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    kind: str
    base_url: str
    api_key: Secret | None = None
    headers: tuple[tuple[str, str], ...] = ()  # extra static request headers
    # Protocol-specific settings, as each protocol declares them (Protocol.provider_options):
    # e.g. azure `api_version`; bedrock `region` and its credentials (Secrets).
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class ProbeSpec:
    name: str = "short"
    prompt: str = "Reply with exactly one word: pong"
    max_tokens: int = 16
    system: str | None = None
    temperature: float | None = 0.0
    nonce: bool = True  # fresh nonce per probe so prompt caching never flatters TTFT
    expect: Expectation | None = None
    # Ask a reasoning model to stream its reasoning where the API allows it.
    reasoning: bool = False
    reasoning_budget: int | None = None
    tools: tuple[ToolSpec, ...] = ()
    image: ImageSpec | None = None  # sent with the prompt (vision probes)


@dataclass(frozen=True)
class ProbeLimits:
    """How much of a response one probe takes in: a provider (or anything posing as one)
    can send without end, and a monitor's memory and loop must not follow it."""

    max_line_bytes: int = 1 << 20  # one SSE/NDJSON line or event, one event-stream frame
    max_stream_bytes: int = 8 << 20  # the whole response body
    max_reply_chars: int = 8192  # reply text kept (expectations, errors, storage)


@dataclass(frozen=True)
class ProbeTarget:
    provider: ProviderSpec
    model: str
    probe: ProbeSpec
    region: str = "local"
    timeout: float = 30.0  # whole probe, from start to end of stream
    connect_timeout: float = 10.0
    limits: ProbeLimits = ProbeLimits()

    @property
    def key(self) -> str:
        return f"{self.provider.name}/{self.model}/{self.probe.name}"

    @property
    def labels(self) -> dict[str, str]:
        return {
            "provider": self.provider.name,
            "model": self.model,
            "probe": self.probe.name,
            "region": self.region,
        }
