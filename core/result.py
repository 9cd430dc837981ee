"""ProbeResult: the immutable record of one timed probe (docs/architecture.md §3).

Everything downstream (aggregator, detector, sinks, alerts, CLI) consumes this and
nothing else from the probe path.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    OK = "ok"
    TIMEOUT = "timeout"
    CONNECT_ERROR = "connect_error"
    HTTP_ERROR = "http_error"
    RATE_LIMITED = "rate_limited"
    STREAM_ERROR = "stream_error"
    CONTENT_MISMATCH = "content_mismatch"


class TokensSource(StrEnum):
    USAGE = "usage"  # the provider's own usage report
    ESTIMATED = "estimated"  # counted from token-bearing chunks / text length
    NONE = "none"  # nothing streamed and nothing reported


# Field names of `probe --format json` in the order printed: a user-facing contract.
JSON_FIELDS: tuple[str, ...] = (
    "provider",
    "model",
    "probe",
    "started_at",
    "ttfb",
    "ttft",
    "ttft_content",
    "e2e",
    "tpot",
    "itl_mean",
    "itl_p50",
    "itl_p95",
    "itl_max",
    "output_tokens",
    "input_tokens",
    "reasoning_tokens",
    "tokens_source",
    "output_tps",
    "outcome",
    "status_code",
    "error",
    "usage_clamped",
)

# Bounds every ProbeResult holds to, whatever a provider sent (see __post_init__).
MAX_ERROR_CHARS = 500
MAX_TEXT_CHARS = 64 * 1024  # a hard ceiling; the probe keeps less (ProbeLimits.max_reply_chars)
MAX_ITLS = 16_384  # gaps kept per probe (a 16k-token reply; far past any probe's max_tokens)
MAX_MAP_ENTRIES = 32  # rate_limit headers, server_timing figures
MAX_SHORT_CHARS = 200  # finish_reason, request_id, header values, names
MAX_COUNT = 1 << 53  # token counts (exact in a float: JSON, InfluxDB, Prometheus)
_FLOAT_FIELDS = ("connect", "tls", "ttfb", "ttft", "ttft_content", "e2e", "tpot", "itl_mean", "itl_p50",
                 "itl_p95", "itl_max", "output_tps", "retry_after")
_COUNT_FIELDS = ("output_tokens", "input_tokens", "reasoning_tokens")


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe. Offsets are seconds from `started_at` (before DNS/connect)."""

    provider: str
    model: str
    probe: str
    region: str
    started_at: datetime  # UTC wall clock at the zero of every offset
    outcome: Outcome
    status_code: int | None = None
    error: str | None = None  # short, secret-free reason; never a label
    connect: float | None = None  # 0.0 on a reused connection
    tls: float | None = None
    ttfb: float | None = None
    ttft: float | None = None
    ttft_content: float | None = None
    e2e: float | None = None
    tpot: float | None = None
    itl_mean: float | None = None
    itl_p50: float | None = None
    itl_p95: float | None = None
    itl_max: float | None = None
    output_tokens: int | None = None
    input_tokens: int | None = None
    reasoning_tokens: int | None = None
    tokens_source: TokensSource = TokensSource.NONE
    output_tps: float | None = None
    finish_reason: str | None = None
    # Every gap between consecutive token-bearing chunks, seconds (feeds itl histograms).
    itls: tuple[float, ...] = ()
    token_chunks: int = 0
    retry_after: float | None = None
    request_id: str | None = None  # provider's request id, for support tickets (never a label)
    rate_limit: dict[str, str] = field(default_factory=dict)  # kept rate-limit headers
    server_timing: dict[str, float] = field(default_factory=dict)  # provider-reported
    text: str = ""  # visible reply text (for expectations; not exported as a label)
    usage_clamped: bool = False  # the provider's usage report was impossible and was bounded

    def __post_init__(self) -> None:
        """Hold every field to its type and range, so that everything downstream (metrics,
        budgets, sinks, the store) can trust a ProbeResult whatever a provider sent: a
        value that is not what its field promises becomes absent, and text is bounded."""
        put = object.__setattr__
        put(self, "outcome", Outcome(self.outcome))
        put(self, "tokens_source", TokensSource(self.tokens_source))
        for name in _FLOAT_FIELDS:
            put(self, name, _seconds(getattr(self, name)))
        for name in _COUNT_FIELDS:
            put(self, name, _count(getattr(self, name)))
        put(self, "token_chunks", _count(self.token_chunks) or 0)
        sc = self.status_code
        put(self, "status_code", sc if type(sc) is int and 100 <= sc <= 599 else None)
        put(self, "error", _short(self.error, MAX_ERROR_CHARS))
        put(self, "finish_reason", _short(self.finish_reason, MAX_SHORT_CHARS))
        put(self, "request_id", _short(self.request_id, MAX_SHORT_CHARS))
        put(self, "text", self.text[:MAX_TEXT_CHARS] if isinstance(self.text, str) else "")
        put(self, "usage_clamped", self.usage_clamped is True)
        put(self, "itls", _gaps(self.itls))
        put(self, "rate_limit", {k[:MAX_SHORT_CHARS]: v[:MAX_SHORT_CHARS]
                                 for k, v in list(self.rate_limit.items())[:MAX_MAP_ENTRIES]
                                 if isinstance(k, str) and isinstance(v, str)})
        timing: dict[str, float] = {}
        for k, v in list(self.server_timing.items())[:MAX_MAP_ENTRIES]:
            f = _finite(v)
            if isinstance(k, str) and f is not None:
                timing[k[:MAX_SHORT_CHARS]] = f
        put(self, "server_timing", timing)

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    @property
    def labels(self) -> dict[str, str]:
        """The target's labels, the same in every room's series (a fresh dict: callers keep it)."""
        return {"provider": self.provider, "model": self.model, "probe": self.probe, "region": self.region}

    @property
    def target(self) -> str:
        return f"{self.provider}/{self.model}/{self.probe}"

    def started_at_rfc3339(self) -> str:
        return self.started_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def to_json_dict(self) -> dict[str, Any]:
        """The `probe --format json` object: exactly JSON_FIELDS, times in seconds."""
        out: dict[str, Any] = {}
        for name in JSON_FIELDS:
            if name == "started_at":
                out[name] = self.started_at_rfc3339()
            else:
                value = getattr(self, name)
                out[name] = value.value if isinstance(value, StrEnum) else value
        return out

    def to_record(self) -> dict[str, Any]:
        """Every field, JSON-serialisable (for the SQLite store and the status API)."""
        # field by field, not dataclasses.asdict: its deep copy of every value (64 gaps a
        # probe) was most of the SQLite sink's cost per result
        rec = {name: getattr(self, name) for name in _FIELD_NAMES}
        rec["rate_limit"] = dict(self.rate_limit)
        rec["server_timing"] = dict(self.server_timing)
        rec["started_at"] = self.started_at_rfc3339()
        rec["outcome"] = self.outcome.value
        rec["tokens_source"] = self.tokens_source.value
        rec["itls"] = list(self.itls)
        return rec

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> ProbeResult:
        data = dict(rec)
        data["started_at"] = datetime.fromisoformat(str(data["started_at"]).replace("Z", "+00:00"))
        data["outcome"] = Outcome(data["outcome"])
        data["tokens_source"] = TokensSource(data.get("tokens_source", "none"))
        data["itls"] = tuple(data.get("itls") or ())
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _finite(v: object) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def _seconds(v: object) -> float | None:
    """A duration or rate: finite and not negative, else absent."""
    f = _finite(v)
    return f if f is not None and f >= 0.0 else None


def _gaps(itls: tuple[float, ...]) -> tuple[float, ...]:
    itls = tuple(itls[:MAX_ITLS])
    try:  # the common case in two C loops: min catches negatives, sum NaN and infinity
        if not itls or (min(itls) >= 0.0 and math.isfinite(sum(itls))):
            return itls
    except TypeError:
        pass
    return tuple(x for x in map(_seconds, itls) if x is not None)


def _count(v: object) -> int | None:
    return v if type(v) is int and 0 <= v <= MAX_COUNT else None


def _short(v: object, most: int) -> str | None:
    return v[:most] if isinstance(v, str) else None


_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(ProbeResult))
