"""Property-based fuzzing of every protocol parser (hypothesis): whatever JSON a provider
sends, in whatever shape, the probe path raises nothing but its own StreamProtocolError
(a `stream_error`), and what it produces is safe for everything downstream: the timing
core, ProbeResult, the Prometheus metrics and the InfluxDB point builder.

Inputs are valid events of each protocol with random subtrees replaced by random JSON
(so the fuzzer reaches deep fields), and wholly random JSON with the protocols' own keys.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.result import Outcome, ProbeResult
from daemon.metrics import Metrics
from daemon.sinks.influx_points import probe_line
from probes.framing import EventStreamFrame, Frame, FramingError, SSEEvent, new_decoder
from probes.protocol import StreamEvent, StreamProtocolError
from probes.registry import PROTOCOLS, protocol_for
from probes.timing import Timeline, UsageBounds, derive

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEYS = [
    "choices", "delta", "content", "refusal", "tool_calls", "function", "arguments", "reasoning_content",
    "reasoning", "finish_reason", "usage", "prompt_tokens", "completion_tokens", "completion_tokens_details",
    "reasoning_tokens", "timings", "prompt_ms", "predicted_ms", "latency_checkpoint", "first_token_ms", "error",
    "object", "message", "type", "text", "thinking", "partial_json", "stop_reason", "input_tokens",
    "output_tokens", "response", "incomplete_details", "reason", "output_tokens_details", "candidates", "parts",
    "thought", "functionCall", "args", "finishReason", "usageMetadata", "promptTokenCount",
    "candidatesTokenCount", "thoughtsTokenCount", "promptFeedback", "blockReason", "done", "done_reason",
    "prompt_eval_count", "eval_count", "total_duration", "eval_duration", "reasoningContent", "toolUse", "input",
    "stopReason", "metrics", "latencyMs", "inputTokens", "outputTokens", "code", "status",
]
NAMES = [
    "message", "content_block_delta", "text_delta", "thinking_delta", "input_json_delta", "signature_delta",
    "message_start", "message_delta", "message_stop", "error", "ping", "response.output_text.delta",
    "response.refusal.delta", "response.reasoning_text.delta", "response.completed", "response.incomplete",
    "response.failed", "STOP", "MAX_TOKENS", "SAFETY", "thinking", "contentBlockDelta", "messageStop", "metadata",
    "chat.completion.chunk", "[DONE]",
]

scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(NAMES),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=5),
    ),
    max_leaves=20,
)

# One valid event per protocol family (what `parse` reads when nothing is wrong).
VALID: dict[str, list[tuple[str, Any]]] = {
    "sse_chat": [
        ("message", {"choices": [{"index": 0, "delta": {"content": "pong", "reasoning_content": "r",
                                                         "tool_calls": [{"function": {"arguments": "{}"}}]},
                                  "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": 9, "completion_tokens": 3,
                               "completion_tokens_details": {"reasoning_tokens": 1}},
                     "timings": {"prompt_ms": 1.5, "predicted_ms": 3},
                     "latency_checkpoint": {"first_token_ms": 12}}),
    ],
    "anthropic": [
        ("message_start", {"type": "message_start", "message": {"usage": {"input_tokens": 5}}}),
        ("content_block_delta", {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "pong"}}),
        ("content_block_delta", {"type": "content_block_delta", "delta": {"type": "thinking_delta", "thinking": "t"}}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                           "usage": {"output_tokens": 3}}),
        ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    ],
    "openai_responses": [
        ("response.output_text.delta", {"type": "response.output_text.delta", "delta": "pong"}),
        ("response.completed", {"type": "response.completed",
                                "response": {"usage": {"input_tokens": 4, "output_tokens": 2,
                                                       "output_tokens_details": {"reasoning_tokens": 0}}}}),
        ("response.incomplete", {"type": "response.incomplete",
                                 "response": {"incomplete_details": {"reason": "max_output_tokens"}}}),
        ("response.failed", {"type": "response.failed", "response": {"error": {"message": "x"}}}),
    ],
    "gemini": [
        ("message", {"candidates": [{"content": {"parts": [{"text": "pong"}, {"text": "t", "thought": True},
                                                           {"functionCall": {"args": {"a": 1}}}]},
                                     "finishReason": "STOP"}],
                     "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2, "thoughtsTokenCount": 1},
                     "promptFeedback": {"blockReason": None}}),
    ],
    "ollama": [
        ("", {"message": {"content": "pong", "thinking": "t"}, "done": True, "done_reason": "stop",
              "prompt_eval_count": 4, "eval_count": 2, "total_duration": 1e9, "eval_duration": 5e8}),
    ],
    "bedrock": [
        ("contentBlockDelta", {"delta": {"text": "pong"}}),
        ("contentBlockDelta", {"delta": {"reasoningContent": {"text": "t"}}}),
        ("contentBlockDelta", {"delta": {"toolUse": {"input": "{}"}}}),
        ("messageStop", {"stopReason": "end_turn"}),
        ("metadata", {"usage": {"inputTokens": 3, "outputTokens": 2}, "metrics": {"latencyMs": 120}}),
    ],
}
FAMILY = {"openai": "sse_chat", "openai_compatible": "sse_chat", "openrouter": "sse_chat",
          "azure_openai": "sse_chat", "anthropic": "anthropic", "openai_responses": "openai_responses",
          "gemini": "gemini", "ollama": "ollama", "bedrock": "bedrock"}


def mutate(draw: st.DrawFn, value: Any, depth: int = 0) -> Any:
    """`value` with some subtrees (maybe itself) replaced by random JSON."""
    if depth > 0 and draw(st.integers(0, 5)) == 0:
        return draw(json_values)
    if isinstance(value, dict):
        out = {k: mutate(draw, v, depth + 1) for k, v in value.items() if draw(st.integers(0, 9))}
        if draw(st.integers(0, 4)) == 0:
            out[draw(st.sampled_from(KEYS))] = draw(json_values)
        return out
    if isinstance(value, list):
        return [mutate(draw, v, depth + 1) for v in value] + draw(st.lists(json_values, max_size=1))
    return value


@st.composite
def payloads(draw: st.DrawFn, family: str) -> tuple[str, Any]:
    if draw(st.booleans()):
        name, valid = draw(st.sampled_from(VALID[family]))
        return name, mutate(draw, valid)
    return draw(st.sampled_from(NAMES)), draw(json_values)


def frame_for(kind: str, name: str, obj: Any) -> Frame:
    data = json.dumps(obj)  # NaN and Infinity too: Python's json reads them back
    if kind == "ollama":
        return data
    if kind == "bedrock":
        return EventStreamFrame({":message-type": "event", ":event-type": name}, data.encode())
    return SSEEvent(event=name, data=data)


def downstream(events: list[StreamEvent]) -> None:
    """What the runner does with parsed events, then every consumer of the result."""
    tl = Timeline(t0_ns=0, max_text_chars=64)
    for i, ev in enumerate(events):
        tl.on_event(ev, 1_000_000 * (i + 1))
    tl.end_ns = 1_000_000 * (len(events) + 1)
    d = derive(tl, UsageBounds(max_output=48, max_input=1024))
    r = ProbeResult(
        provider="p", model="m", probe="short", region="local", started_at=datetime.now(UTC),
        outcome=Outcome.OK, ttft=d.ttft, e2e=d.e2e, tpot=d.tpot, itl_mean=d.itl_mean, itl_p50=d.itl_p50,
        itl_p95=d.itl_p95, itl_max=d.itl_max, output_tokens=d.output_tokens, input_tokens=d.input_tokens,
        reasoning_tokens=d.reasoning_tokens, tokens_source=d.tokens_source, output_tps=d.output_tps,
        finish_reason=tl.finish_reason, itls=d.itls, server_timing=dict(tl.server_timing), text=tl.text,
        usage_clamped=d.usage_clamped,
    )
    # a usage report is believed up to the allowance or what was streamed (every char of it,
    # kept or not: text_parts keeps only the first max_text_chars); an estimate never
    # exceeds the token-bearing chunks or the chars
    most = max(48, tl.text_chars + tl.reasoning_chars, tl.token_count)
    assert r.output_tokens is None or 0 <= r.output_tokens <= most
    assert all(math.isfinite(v) for v in r.server_timing.values())
    Metrics().observe(r, 0.001)
    probe_line(r)
    json.dumps(r.to_record(), allow_nan=False)  # the store and the status API


@pytest.mark.parametrize("kind", sorted(PROTOCOLS))
def test_no_exception_but_stream_protocol_error_escapes_a_parser(kind: str) -> None:
    protocol = protocol_for(kind)
    family = FAMILY[kind]

    @FUZZ
    @given(st.lists(payloads(family), min_size=1, max_size=4))
    def run(items: list[tuple[str, Any]]) -> None:
        state: dict[str, Any] = {}
        events: list[StreamEvent] = []
        for name, obj in items:
            try:
                ev = protocol.parse(frame_for(kind, name, obj), state)
            except StreamProtocolError as exc:
                assert str(exc) and len(str(exc)) < 400
                continue
            if ev is not None:
                assert isinstance(ev.text, str) and isinstance(ev.reasoning, str)
                assert ev.finish_reason is None or isinstance(ev.finish_reason, str)
                events.append(ev)
        downstream(events)

    run()


@pytest.mark.parametrize("framing", ["sse", "ndjson", "eventstream"])
def test_decoders_turn_any_bytes_into_frames_or_a_framing_error(framing: str) -> None:
    @FUZZ
    @given(st.lists(st.binary(max_size=64), max_size=8))
    def run(chunks: list[bytes]) -> None:
        decoder = new_decoder(framing, max_line=64)
        try:
            for chunk in chunks:
                decoder.feed(chunk)
            decoder.close()
        except FramingError:
            pass

    run()
