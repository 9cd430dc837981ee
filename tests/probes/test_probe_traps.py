"""Every stream trap of docs/wire-formats.md, replayed over a real loopback socket through
run_probe: the timing and the single outcome must come out right."""

from __future__ import annotations

import json

import pytest

from core.result import Outcome, TokensSource
from probes.target import Expectation
from tests.probes.factories import DONE, FINISH, ROLE_NULL, TOL, chunk, probe, target
from tests.replay import Script

ROLE = chunk({"role": "assistant", "content": "", "refusal": None})
USAGE = chunk(choices=[], usage={"prompt_tokens": 20, "completion_tokens": 3, "total_tokens": 23,
                                 "completion_tokens_details": {"reasoning_tokens": 0}})




async def test_role_only_first_chunk_is_not_ttft_and_usage_chunk_counts() -> None:
    r, srv = await probe(Script(writes=[(0.05, ROLE), (0.2, chunk({"content": "pong"})), (0.05, chunk({"content": "!"})),
                                        (0, FINISH + USAGE + DONE)]))
    assert r.outcome is Outcome.OK, r.error
    assert r.ttft == pytest.approx(0.25, abs=TOL)
    assert r.ttfb is not None and r.ttfb < r.ttft - 0.15
    assert r.tokens_source is TokensSource.USAGE and (r.output_tokens, r.input_tokens) == (3, 20)
    assert r.itls and r.itls[0] == pytest.approx(0.05, abs=TOL)
    body = json.loads(srv.seen[0].body)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert "[probe " in body["messages"][-1]["content"]  # fresh nonce against prompt caching


async def test_content_null_and_empty_are_not_tokens() -> None:
    r, _ = await probe(Script(writes=[(0, ROLE_NULL), (0.1, chunk({"content": ""})), (0.15, chunk({"content": "pong"})),
                                      (0, FINISH + DONE)]))
    assert r.outcome is Outcome.OK
    assert r.ttft == pytest.approx(0.25, abs=TOL)
    assert r.tokens_source is TokensSource.ESTIMATED and r.output_tokens == 1


async def test_reasoning_before_content() -> None:
    r, _ = await probe(Script(writes=[(0, ROLE), (0.1, chunk({"reasoning_content": "thinking"})),
                                      (0.05, chunk({"reasoning_content": " more"})),
                                      (0.15, chunk({"content": "pong"})), (0, FINISH + USAGE + DONE)]))
    assert r.outcome is Outcome.OK
    assert r.ttft == pytest.approx(0.1, abs=TOL)
    assert r.ttft_content == pytest.approx(0.3, abs=TOL)
    assert r.token_chunks == 3


async def test_comments_and_pings_are_not_tokens() -> None:
    r, _ = await probe(Script(writes=[(0.02, b": OPENROUTER PROCESSING\n\n"), (0.1, b": OPENROUTER PROCESSING\n\n"),
                                      (0.1, chunk({"role": "assistant", "content": "pong"})), (0, FINISH + DONE)]),
                       kind="openrouter")
    assert r.outcome is Outcome.OK
    assert r.ttft == pytest.approx(0.22, abs=TOL)
    events = [
        (0, b'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":9,"output_tokens":1}}}\n\n'),
        (0, b'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n'),
        (0.1, b'event: ping\ndata: {"type": "ping"}\n\n'),
        (0.1, b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"pong"}       }\n\n'),
        (0, b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":2}}\n\n'
            b'event: message_stop\ndata: {"type":"message_stop"       }\n\n'),
    ]
    r, srv = await probe(Script(writes=events), kind="anthropic", key="sk-ant-test")
    assert r.outcome is Outcome.OK, r.error
    assert r.ttft == pytest.approx(0.2, abs=TOL)
    assert (r.input_tokens, r.output_tokens, r.finish_reason) == (9, 2, "end_turn")
    assert srv.seen[0].headers["x-api-key"] == "sk-ant-test"
    assert srv.seen[0].headers["anthropic-version"] == "2023-06-01"


GEMINI = [
    b'data: {"candidates": [{"content": {"parts": [{"text": "thinking","thought": true}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 11,"thoughtsTokenCount": 5}}\r\n\r\n',
    'data: {"candidates": [{"content": {"parts": [{"text": "pong Olá"}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 11,"candidatesTokenCount": 3,"thoughtsTokenCount": 5}}\r\n\r\n'.encode(),
    b'data: {"candidates": [{"content": {"parts": [{"text": "!"}],"role": "model"},"finishReason": "STOP","index": 0}],"usageMetadata": {"promptTokenCount": 11,"candidatesTokenCount": 4,"thoughtsTokenCount": 5}}\r\n\r\n',
]


async def test_gemini_crlf_split_between_cr_and_lf_and_inside_utf8() -> None:
    second = GEMINI[1]
    cut_utf8 = second.index("á".encode()) + 1  # inside the two bytes of "á"
    cut_crlf = len(second) - 3  # between "\r" and "\n" of the blank line
    writes = [
        (0.1, GEMINI[0][:-1]),  # the event ends with "\r\n\r" ...
        (0.1, GEMINI[0][-1:]),  # ... and its last "\n" arrives 0.1 s later: the event completes here
        (0.1, second[:cut_utf8]),
        (0.05, second[cut_utf8:cut_crlf]),
        (0.05, second[cut_crlf:] + GEMINI[2]),
    ]
    r, srv = await probe(Script(writes=writes), kind="gemini", key="g-key-123", model="gemini-x", base="/v1beta")
    assert r.outcome is Outcome.OK, r.error
    # A lone CR already ends a line, so the thought event completes at 0.1 s, when
    # "\r\n\r" arrived; the content event's blank line ("\r\n" after the data line's
    # "\r", split before its "\n") completes only with the last write at 0.4 s.
    assert r.ttft == pytest.approx(0.1, abs=TOL)
    assert r.ttft_content == pytest.approx(0.4, abs=TOL)
    assert r.text == "pong Olá!"
    assert (r.output_tokens, r.reasoning_tokens, r.input_tokens) == (9, 5, 11)
    seen = srv.seen[0]
    assert seen.path == "/v1beta/models/gemini-x:streamGenerateContent?alt=sse"
    assert seen.headers["x-goog-api-key"] == "g-key-123" and "key=" not in seen.path


async def test_multiline_data_and_several_events_in_one_read() -> None:
    multi = b'data: {"choices":[{"index":0,\ndata: "delta":{"content":"pong"},"finish_reason":null}]}\n\n'
    r, _ = await probe(Script(writes=[(0, ROLE), (0.1, multi + chunk({"content": " a"}) + chunk({"content": " b"})),
                                      (0.1, chunk({"content": " c"}) + FINISH + USAGE + DONE)]))
    assert r.outcome is Outcome.OK, r.error
    assert r.text == "pong a b c"
    assert r.ttft == pytest.approx(0.1, abs=TOL)
    # three events arrived in one read: gaps of 0 between them, then ~0.1 s
    assert r.itls[:2] == (0.0, 0.0)
    assert r.itls[2] == pytest.approx(0.1, abs=TOL)


async def test_event_split_across_reads_is_timed_when_complete() -> None:
    ev = chunk({"content": "pong"})
    r, _ = await probe(Script(writes=[(0, ROLE), (0.1, ev[:25]), (0.2, ev[25:]), (0, FINISH + DONE)]))
    assert r.outcome is Outcome.OK
    assert r.ttft == pytest.approx(0.3, abs=TOL)


async def test_error_event_mid_stream() -> None:
    err = b'data: {"error":{"message":"The server had an error","type":"server_error","param":null,"code":null}}\n\n'
    r, _ = await probe(Script(writes=[(0, ROLE), (0.05, chunk({"content": "po"})), (0.05, err), (0, DONE)]))
    assert r.outcome is Outcome.STREAM_ERROR
    assert "server_error" in (r.error or "") and r.ttft is not None


@pytest.mark.parametrize(("status", "outcome"), [(429, Outcome.RATE_LIMITED), (503, Outcome.HTTP_ERROR), (500, Outcome.HTTP_ERROR)])
async def test_http_errors_with_json_body(status: int, outcome: Outcome) -> None:
    body = json.dumps({"error": {"message": "Rate limit reached for gpt-4o-mini", "type": "requests"}}).encode()
    script = Script(status=status, headers=[("content-type", "application/json"), ("retry-after", "7"),
                                            ("x-ratelimit-remaining-requests", "0")], writes=[(0, body)])
    r, _ = await probe(script)
    assert r.outcome is outcome and r.status_code == status
    assert r.error == f"HTTP {status}: Rate limit reached for gpt-4o-mini"
    assert r.retry_after == 7.0 and r.rate_limit["x-ratelimit-remaining-requests"] == "0"
    assert r.ttft is None and r.e2e is not None and r.ttfb is not None and r.e2e >= r.ttfb


async def test_timeout_before_headers() -> None:
    r, _ = await probe(Script(header_delay=3.0, writes=[(0, ROLE)]), timeout=0.5)
    assert r.outcome is Outcome.TIMEOUT and "no response headers" in (r.error or "")
    assert r.ttfb is None


async def test_timeout_mid_stream() -> None:
    r, _ = await probe(Script(writes=[(0, ROLE), (0.05, chunk({"content": "pong"}))], end="hang"), timeout=0.6)
    assert r.outcome is Outcome.TIMEOUT and "stalled" in (r.error or "")
    assert r.ttft == pytest.approx(0.05, abs=TOL) and r.e2e is None


@pytest.mark.parametrize("end", ["eom", "abort"])
async def test_stream_cut_without_terminal_event(end: str) -> None:
    r, _ = await probe(Script(writes=[(0, ROLE), (0.05, chunk({"content": "pong"}))], end=end))
    assert r.outcome is Outcome.STREAM_ERROR, r
    assert "truncated" in (r.error or "") or "broken" in (r.error or "")


async def test_malformed_json_is_a_stream_error() -> None:
    r, _ = await probe(Script(writes=[(0, ROLE), (0.05, b'data: {"choices": [{"delta": {"content": "br\n\n')]))
    assert r.outcome is Outcome.STREAM_ERROR and "malformed JSON" in (r.error or "")


async def test_length_before_visible_text_is_reported_not_zero_ttft() -> None:
    length = chunk(choices=[{"index": 0, "delta": {}, "finish_reason": "length"}])
    usage = chunk(choices=[], usage={"prompt_tokens": 9, "completion_tokens": 16,
                                     "completion_tokens_details": {"reasoning_tokens": 16}})
    r, _ = await probe(Script(writes=[(0, ROLE), (0.2, length + usage + DONE)]))
    assert r.outcome is Outcome.CONTENT_MISMATCH
    assert "finish_reason=length before any visible text" in (r.error or "")
    assert r.ttft is None and r.ttft_content is None and r.reasoning_tokens == 16


@pytest.mark.parametrize(("expect", "ok"), [
    (Expectation(contains="PONG"), True), (Expectation(contains="ping"), False),
    (Expectation(regex=r"^po+ng$"), True), (Expectation(json=True), False), (Expectation(min_tokens=5), False),
])
async def test_expectations(expect: Expectation, ok: bool) -> None:
    r, _ = await probe(Script(writes=[(0, ROLE), (0.02, chunk({"content": "pong"})), (0, FINISH + USAGE + DONE)]),
                       expect=expect)
    assert (r.outcome is Outcome.OK) is ok, r.error
    if not ok:
        assert r.outcome is Outcome.CONTENT_MISMATCH and r.error


async def test_api_key_never_leaks_even_when_the_server_echoes_it() -> None:
    key = "sk-proj-SUPERSECRET-0123456789"
    body = json.dumps({"error": {"message": f"Incorrect API key provided: {key}.", "type": "invalid_request_error"}})
    r, srv = await probe(Script(status=401, headers=[("content-type", "application/json")], writes=[(0, body.encode())]),
                         key=key)
    assert srv.seen[0].headers["authorization"] == f"Bearer {key}"
    assert r.outcome is Outcome.HTTP_ERROR
    assert key not in json.dumps(r.to_record()) and key not in repr(r)
    assert "***" in (r.error or "")
    t = target("openai", srv.url, key=key)
    assert key not in repr(t) and key not in str(t)


async def test_responses_api_stream() -> None:
    def ev(kind: str, **f: object) -> bytes:
        return f"event: {kind}\ndata: {json.dumps({'type': kind, **f})}\n\n".encode()

    writes = [
        (0, ev("response.created", response={}) + ev("response.in_progress", response={})),
        (0.1, ev("response.reasoning_summary_text.delta", delta="Thinking")),
        (0.1, ev("response.output_text.delta", delta="pong")),
        (0, ev("response.completed", response={"usage": {"input_tokens": 20, "output_tokens": 8,
                                                         "output_tokens_details": {"reasoning_tokens": 6}}})),
    ]
    r, srv = await probe(Script(writes=writes), kind="openai_responses")
    assert r.outcome is Outcome.OK, r.error
    assert r.ttft == pytest.approx(0.1, abs=TOL) and r.ttft_content == pytest.approx(0.2, abs=TOL)
    assert (r.output_tokens, r.reasoning_tokens) == (8, 6)
    assert srv.seen[0].path == "/v1/responses"


async def test_ollama_ndjson_keeps_server_timings() -> None:
    lines = [
        (0.1, b'{"model":"m","message":{"role":"assistant","content":"","thinking":"hmm"},"done":false}\n'),
        (0.1, b'{"model":"m","message":{"role":"assistant","content":"pong"},"done":false}\n'),
        (0, b'{"model":"m","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop",'
            b'"total_duration":512000000,"load_duration":1000000,"prompt_eval_count":26,"prompt_eval_duration":20000000,'
            b'"eval_count":2,"eval_duration":400000000}\n'),
    ]
    r, srv = await probe(Script(headers=[("content-type", "application/x-ndjson")], writes=lines), kind="ollama", base="")
    assert r.outcome is Outcome.OK, r.error
    assert r.ttft == pytest.approx(0.1, abs=TOL) and r.ttft_content == pytest.approx(0.2, abs=TOL)
    assert r.server_timing["total"] == pytest.approx(0.512) and r.server_timing["eval"] == pytest.approx(0.4)
    assert (r.input_tokens, r.output_tokens) == (26, 2)
    assert srv.seen[0].path == "/api/chat"


async def test_azure_prompt_filter_chunk_and_deployment_url() -> None:
    filt = chunk(choices=[], prompt_filter_results=[{"prompt_index": 0, "content_filter_results": {}}])
    r, srv = await probe(Script(writes=[(0.05, filt), (0.05, ROLE), (0.1, chunk({"content": "pong"})),
                                        (0, FINISH + USAGE + DONE)]), kind="azure_openai", key="az-key", base="")
    assert r.outcome is Outcome.OK, r.error
    assert r.ttft == pytest.approx(0.2, abs=TOL)
    assert srv.seen[0].path == "/openai/deployments/m/chat/completions?api-version=2024-10-21"
    assert srv.seen[0].headers["api-key"] == "az-key"
