"""SSE framing: however the bytes are split into reads, the same events come out, and
the fast path for whole `data:` events agrees with the general decoder."""

from __future__ import annotations

import random

import pytest

from probes.framing import FramingError, SSEDecoder, SSEEvent

STREAM = (
    "\ufeffdata: {\"a\":1}\n\n"
    ": keep-alive comment\n\n"
    "event: delta\ndata: {\"b\":\"x\\u2028y\"}\n\n"
    "data: line1\ndata: line2\n\n"
    "data:no-space\n\n"
    "data: crlf\r\n\r\n"
    "id: 7\ndata: with id\n\n"
    "error: llama\n\n"
    "data: [DONE]\n\n"
).encode()


def decode(chunks: list[bytes]) -> list[SSEEvent]:
    d = SSEDecoder()
    out = []
    for c in chunks:
        out.extend(d.feed(c))
    out.extend(d.close())
    return out  # type: ignore[return-value]


def test_every_split_of_the_stream_gives_the_same_events() -> None:
    whole = decode([STREAM])
    assert [e.data for e in whole] == ['{"a":1}', '{"b":"x\\u2028y"}', "line1\nline2", "no-space", "crlf",
                                       "with id", "", "[DONE]"]
    assert whole[1].event == "delta" and whole[5].id == "7" and whole[6].extra == (("error", "llama"),)
    rng = random.Random(7)
    for _ in range(300):
        cuts = sorted(rng.sample(range(1, len(STREAM)), rng.randint(1, 12)))
        parts = [STREAM[a:b] for a, b in zip([0, *cuts], [*cuts, len(STREAM)], strict=True)]
        assert decode(parts) == whole
    assert decode([STREAM[i:i + 1] for i in range(len(STREAM))]) == whole


def test_fast_path_events_match_the_general_path() -> None:
    events = b"".join(f"data: {{\"i\":{i}}}\n\n".encode() for i in range(5))
    d = SSEDecoder()
    assert d.feed(b"data: first\n\n")[0].data == "first"  # the first read always takes the general path
    fast = d.feed(events)
    general = decode([b"data: first\n\n" + events])[1:]
    assert fast == general and len(fast) == 5


def test_invalid_utf8_is_a_framing_error_on_both_paths() -> None:
    d = SSEDecoder()
    d.feed(b"data: ok\n\n")
    with pytest.raises(FramingError):
        d.feed(b"data: \xff\xfe\n\n")
    with pytest.raises(FramingError):
        SSEDecoder().feed(b"data: \xff\n\n")


def test_openai_plain_token_chunks_parse_as_the_general_path_does(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """OpenAI chat's fast path for plain text deltas gives the general parser's event, and
    leaves every other shape to it."""
    from probes.protocol import StreamProtocolError
    from probes.protocols import openai_chat

    chunks: list[dict] = [  # type: ignore[type-arg]
        {"choices": [{"index": 0, "delta": {"content": "po"}}], "id": "x", "object": "chat.completion.chunk"},
        {"choices": [{"delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
        {"choices": [{"delta": {"content": "ng"}, "finish_reason": "stop"}]},
        {"choices": [{"delta": {"content": "a", "refusal": "no"}}]},
        {"choices": [{"delta": {"content": "a", "reasoning_content": "hm"}}]},
        {"choices": [{"delta": {"content": None}}]},
        {"choices": [{"delta": {"content": "a"}}, {"delta": {"content": "b"}}]},
        {"choices": [{"delta": {"content": "a"}}], "usage": {"prompt_tokens": 3, "completion_tokens": 1}},
        {"choices": [{"delta": {"content": "a"}}], "timings": {"prompt_ms": 12.0}},
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}},
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": ""}}]}}]},
    ]
    proto = openai_chat.OpenAIChat()
    fast = [proto.chunk(c) for c in chunks]
    taken = [openai_chat._plain_token(c) is not None for c in chunks]
    for bad in ({"choices": [{"delta": {"content": 7}}]}, {"choices": [{"delta": "x"}]}):
        with pytest.raises(StreamProtocolError):
            proto.chunk(bad)  # a wrong shape is still refused, naming the field
    monkeypatch.setattr(openai_chat, "_plain_token", lambda obj: None)
    assert fast == [proto.chunk(c) for c in chunks]
    assert taken == [True, True] + [False] * (len(chunks) - 2)
