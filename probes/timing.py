"""The timing core: arrival-stamped stream events → the numbers of docs/architecture.md §3.

All stamps are `time.perf_counter_ns()` taken when a network chunk arrived; the zero is
the instant the probe began its request (before DNS/connect).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

from core.result import MAX_ITLS, TokensSource
from probes.protocol import StreamEvent, Usage

NS = 1_000_000_000
MAX_TOOL_CALLS = 16  # tool calls tracked per probe
MAX_TOOL_NAME = 200


@dataclass(slots=True)
class Timeline:
    t0_ns: int
    connect_start_ns: int | None = None
    connect_end_ns: int | None = None
    tls_start_ns: int | None = None
    tls_end_ns: int | None = None
    headers_ns: int | None = None
    first_token_ns: int | None = None  # text or reasoning
    first_content_ns: int | None = None  # visible text
    last_byte_ns: int | None = None
    end_ns: int | None = None
    # Arrival of each token-bearing chunk: the first MAX_ITLS + 1 (a stream past that is
    # far beyond any probe's max_tokens; deriving from all of an endless one cost ms).
    token_stamps: list[int] = field(default_factory=list)
    token_count: int = 0  # all token-bearing chunks
    text_parts: list[str] = field(default_factory=list)  # the first `max_text_chars` of the reply
    max_text_chars: int = 8192
    text_chars: int = 0  # all of the reply, kept or not
    reasoning_chars: int = 0
    # Tool calls by stream index: [name, argument text kept]; argument text counts as
    # output and as reply text (an expectation may look into it).
    tool_calls: dict[int, list[str]] = field(default_factory=dict)
    usage: Usage | None = None
    finish_reason: str | None = None
    terminal: bool = False
    server_timing: dict[str, float] = field(default_factory=dict)

    def on_event(self, ev: StreamEvent, t_ns: int) -> None:
        """Record one parsed event that arrived (its last byte) at `t_ns`."""
        if ev.text or ev.reasoning or ev.tools:
            if self.first_token_ns is None:
                self.first_token_ns = t_ns
            self.token_count += 1
            if self.token_count <= MAX_ITLS + 1:
                self.token_stamps.append(t_ns)
            if (ev.text or ev.tools) and self.first_content_ns is None:
                self.first_content_ns = t_ns
            if ev.text:
                self._keep_text(ev.text)
            for tool in ev.tools:
                self._on_tool(tool.index, tool.name, tool.arguments)
            if ev.reasoning:
                self.reasoning_chars += len(ev.reasoning)
        if ev.usage is not None:
            self.usage = _merge_usage(self.usage, ev.usage)
        if ev.finish_reason:
            self.finish_reason = ev.finish_reason
        if ev.server_timing:
            self.server_timing.update(ev.server_timing)
        if ev.terminal:
            self.terminal = True

    def _keep_text(self, text: str) -> None:
        room = self.max_text_chars - self.text_chars
        if room > 0:
            self.text_parts.append(text[:room])
        self.text_chars += len(text)

    def _on_tool(self, index: int, name: str | None, arguments: str) -> None:
        call = self.tool_calls.get(index)
        if call is None:
            if len(self.tool_calls) >= MAX_TOOL_CALLS:
                return  # a stream of endless calls: the first ones decide the outcome
            call = self.tool_calls[index] = ["", ""]
        if name and not call[0]:
            call[0] = name[:MAX_TOOL_NAME]
        if arguments:
            room = self.max_text_chars - len(call[1])
            if room > 0:
                call[1] += arguments[:room]
            self._keep_text(arguments)

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    def tools(self) -> list[tuple[str, str]]:
        """(name, arguments) of each tool call, in stream order."""
        return [(c[0], c[1]) for _, c in sorted(self.tool_calls.items())]

    def offset(self, t_ns: int | None) -> float | None:
        return None if t_ns is None else (t_ns - self.t0_ns) / NS

    def phases(self) -> tuple[float | None, float | None]:
        """(connect, tls) durations; 0.0 on a reused connection."""
        if self.headers_ns is None and self.connect_end_ns is None:
            return None, None
        connect = 0.0
        tls = 0.0
        if self.connect_start_ns is not None and self.connect_end_ns is not None:
            connect = (self.connect_end_ns - self.connect_start_ns) / NS
        if self.tls_start_ns is not None and self.tls_end_ns is not None:
            tls = (self.tls_end_ns - self.tls_start_ns) / NS
        return connect, tls


@dataclass(frozen=True, slots=True)
class Derived:
    ttfb: float | None
    ttft: float | None
    ttft_content: float | None
    e2e: float | None
    tpot: float | None
    itls: tuple[float, ...]
    itl_mean: float | None
    itl_p50: float | None
    itl_p95: float | None
    itl_max: float | None
    output_tokens: int | None
    input_tokens: int | None
    reasoning_tokens: int | None
    tokens_source: TokensSource
    output_tps: float | None
    usage_clamped: bool = False  # the provider's usage report was impossible and was bounded


@dataclass(frozen=True, slots=True)
class UsageBounds:
    """The most tokens a probe's request allowed: a usage report beyond them is not believed."""

    max_output: int | None = None
    max_input: int | None = None


def derive(tl: Timeline, bounds: UsageBounds = UsageBounds()) -> Derived:
    ttft = tl.offset(tl.first_token_ns)
    e2e = tl.offset(tl.end_ns)
    stamps = tl.token_stamps
    # Two reads microseconds apart can come out a hair reversed (a kernel stamp is moved
    # onto perf_counter by two clock reads): a gap is never negative.
    itls = tuple(max(0, b - a) / NS for a, b in itertools.pairwise(stamps))
    ordered = sorted(itls)

    input_tokens = output_tokens = reasoning_tokens = None
    source = TokensSource.NONE
    usage, clamped = _bounded(tl, bounds)
    if usage is not None and usage.output_tokens is not None:
        source = TokensSource.USAGE
        output_tokens = usage.output_tokens
        input_tokens = usage.input_tokens
        reasoning_tokens = usage.reasoning_tokens
    elif stamps:
        # Chunks are not tokens (one chunk may carry several); ~4 chars a token is the
        # usual estimate, and never fewer tokens than token-bearing chunks.
        source = TokensSource.ESTIMATED
        chars = tl.text_chars + tl.reasoning_chars
        output_tokens = max(tl.token_count, math.ceil(chars / 4))
        reasoning_tokens = math.ceil(tl.reasoning_chars / 4) if tl.reasoning_chars else None
        if usage is not None:
            input_tokens = usage.input_tokens

    gen = (e2e - ttft) if (e2e is not None and ttft is not None) else None
    tpot = output_tps = None
    if gen is not None and output_tokens:
        if output_tokens > 1:
            tpot = gen / (output_tokens - 1)
        if gen > 0:
            output_tps = output_tokens / gen

    return Derived(
        ttfb=tl.offset(tl.headers_ns),
        ttft=ttft,
        ttft_content=tl.offset(tl.first_content_ns),
        e2e=e2e,
        tpot=tpot,
        itls=itls,
        itl_mean=(sum(itls) / len(itls)) if itls else None,
        itl_p50=_at(ordered, 0.50),
        itl_p95=_at(ordered, 0.95),
        itl_max=ordered[-1] if ordered else None,
        output_tokens=output_tokens,
        input_tokens=input_tokens,
        reasoning_tokens=reasoning_tokens,
        tokens_source=source,
        output_tps=output_tps,
        usage_clamped=clamped,
    )


def _bounded(tl: Timeline, bounds: UsageBounds) -> tuple[Usage | None, bool]:
    """The usage report held to what the request allowed. A provider's report feeds the
    token and cost budgets, so one absurd figure (10^12 tokens) must not spend a day's
    budget. The stream itself is evidence too: a token has at least one character, so
    a report up to what was streamed is believed even past the request's allowance (a
    provider whose reasoning is not counted in max_tokens)."""
    u = tl.usage
    if u is None:
        return None, False
    clamped = u.suspect
    out, inp, reasoning = u.output_tokens, u.input_tokens, u.reasoning_tokens
    if bounds.max_output is not None:
        most = max(bounds.max_output, tl.text_chars + tl.reasoning_chars)
        if out is not None and out > most:
            out, clamped = most, True
        if reasoning is not None and reasoning > most:
            reasoning, clamped = most, True
    if bounds.max_input is not None and inp is not None and inp > bounds.max_input:
        inp, clamped = bounds.max_input, True
    return Usage(inp, out, reasoning), clamped


def quantile(values: tuple[float, ...] | list[float], q: float) -> float | None:
    """Linear-interpolated quantile (numpy's default method), without numpy on the hot path."""
    return _at(sorted(values), q)


def _at(s: list[float], q: float) -> float | None:
    """Quantile `q` of the sorted values `s`."""
    if not s:
        return None
    pos = (len(s) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def _merge_usage(old: Usage | None, new: Usage) -> Usage:
    """Later reports win field by field (Anthropic: input in message_start, output later)."""
    if old is None:
        return Usage(new.input_tokens, new.output_tokens, new.reasoning_tokens, new.suspect)
    return Usage(
        new.input_tokens if new.input_tokens is not None else old.input_tokens,
        new.output_tokens if new.output_tokens is not None else old.output_tokens,
        new.reasoning_tokens if new.reasoning_tokens is not None else old.reasoning_tokens,
        old.suspect or new.suspect,
    )
