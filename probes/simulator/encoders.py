"""Byte-exact stream encoders, one per wire protocol, shaped like the real providers'
streams in docs/wire-formats.md (role-only first chunk, usage-only last chunk, pings, CRLF...)."""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from typing import Any


def sse(obj: Any, event: str | None = None, crlf: bool = False) -> bytes:
    nl = "\r\n" if crlf else "\n"
    head = f"event: {event}{nl}" if event else ""
    body = obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"))
    return f"{head}data: {body}{nl}{nl}".encode()


def es_frame(headers: dict[str, str], payload: bytes, corrupt: bool = False) -> bytes:
    """One AWS event-stream message (prelude, CRCs, string headers)."""
    hbytes = b""
    for name, value in headers.items():
        n, v = name.encode(), value.encode()
        hbytes += struct.pack("!B", len(n)) + n + b"\x07" + struct.pack("!H", len(v)) + v
    total = 12 + len(hbytes) + len(payload) + 4
    prelude = struct.pack("!II", total, len(hbytes))
    prelude += struct.pack("!I", zlib.crc32(prelude) & 0xFFFFFFFF)
    msg = prelude + hbytes + payload
    crc = zlib.crc32(msg) & 0xFFFFFFFF
    if corrupt:
        crc ^= 0xDEADBEEF
    return msg + struct.pack("!I", crc)


def es_event(event: str, obj: dict[str, Any], corrupt: bool = False) -> bytes:
    payload = json.dumps({**obj, "p": "abcdefghij"}, separators=(",", ":")).encode()
    return es_frame({":event-type": event, ":content-type": "application/json", ":message-type": "event"},
                    payload, corrupt)


@dataclass
class Usage:
    input_tokens: int
    output_tokens: int
    reasoning_tokens: int


class Encoder:
    content_type = "text/event-stream; charset=utf-8"
    protocol = "base"
    # Gemini and Ollama send a tool call whole (name and arguments in one event); the
    # others stream it: a start naming the tool, then argument fragments.
    whole_tool_calls = False

    def __init__(self, model: str, request_id: str) -> None:
        self.model = model
        self.rid = request_id
        self.tool_mode = False  # set before preamble() when the reply is a tool call

    def tool_start(self, name: str) -> bytes:
        raise NotImplementedError

    def tool_delta(self, fragment: str) -> bytes:
        raise NotImplementedError

    def tool_whole(self, name: str, args: dict[str, Any]) -> bytes:
        raise NotImplementedError

    def preamble(self) -> bytes:
        return b""

    def token(self, text: str, reasoning: bool) -> bytes:
        raise NotImplementedError

    def finish(self, usage: Usage | None, reason: str = "stop") -> bytes:
        raise NotImplementedError

    def error_event(self) -> bytes:
        raise NotImplementedError

    def malformed(self) -> bytes:
        return b'data: {"choices": [{"delta": {"content": "br\n\n'

    def error_body(self, status: int) -> dict[str, Any]:
        kind = {429: "rate_limit_exceeded", 529: "overloaded_error"}.get(status, "server_error")
        return {"error": {"message": f"simulated HTTP {status}", "type": kind, "code": status}}

    def bad_crc(self) -> bytes:
        return self.malformed()


class OpenAIChatEncoder(Encoder):
    protocol = "openai"

    def __init__(self, model: str, request_id: str, azure: bool = False) -> None:
        super().__init__(model, request_id)
        self.azure = azure

    def _chunk(self, choices: list[dict[str, Any]], usage: Any = None) -> bytes:
        return sse({"id": f"chatcmpl-{self.rid}", "object": "chat.completion.chunk", "created": 1782321902,
                    "model": self.model, "choices": choices, "usage": usage})

    def preamble(self) -> bytes:
        out = b""
        if self.azure:  # Azure's prompt-filter annotation: empty choices, not a token
            out += sse({"choices": [], "created": 0, "id": "", "model": "", "object": "",
                        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]})
        return out + self._chunk([{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": None},
                                   "finish_reason": None}])

    def token(self, text: str, reasoning: bool) -> bytes:
        key = "reasoning_content" if reasoning else "content"
        return self._chunk([{"index": 0, "delta": {key: text}, "finish_reason": None}])

    def tool_start(self, name: str) -> bytes:
        call = {"index": 0, "id": f"call_{self.rid}", "type": "function", "function": {"name": name, "arguments": ""}}
        return self._chunk([{"index": 0, "delta": {"content": None, "role": "assistant", "tool_calls": [call]},
                             "finish_reason": None}])

    def tool_delta(self, fragment: str) -> bytes:
        return self._chunk([{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": fragment}}]},
                             "finish_reason": None}])

    def finish(self, usage: Usage | None, reason: str = "stop") -> bytes:
        out = self._chunk([{"index": 0, "delta": {}, "finish_reason": reason}])
        if usage is not None:
            out += self._chunk([], {"prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens,
                                    "total_tokens": usage.input_tokens + usage.output_tokens,
                                    "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens}})
        return out + sse("[DONE]")

    def error_event(self) -> bytes:
        return sse({"error": {"message": "The server had an error while processing your request.",
                              "type": "server_error", "param": None, "code": None}}) + sse("[DONE]")


class ResponsesEncoder(Encoder):
    protocol = "openai_responses"

    def __init__(self, model: str, request_id: str) -> None:
        super().__init__(model, request_id)
        self.seq = 0
        self.args = ""  # the function call's arguments so far (tool_delta)

    def _ev(self, kind: str, **fields: Any) -> bytes:
        obj = {"type": kind, **fields, "sequence_number": self.seq}
        self.seq += 1
        return sse(obj, event=kind)

    def _resp(self, status: str, usage: Any = None) -> dict[str, Any]:
        return {"id": f"resp_{self.rid}", "object": "response", "status": status, "model": self.model,
                "output": [], "usage": usage, "incomplete_details": None, "error": None}

    def preamble(self) -> bytes:
        out = (self._ev("response.created", response=self._resp("in_progress"))
               + self._ev("response.in_progress", response=self._resp("in_progress")))
        if self.tool_mode:  # the function_call item opens with the call (tool_start)
            return out
        return out + self._ev("response.output_item.added", output_index=0,
                              item={"id": "msg_1", "type": "message", "status": "in_progress", "content": [],
                                    "role": "assistant"})

    def tool_start(self, name: str) -> bytes:
        self.args = ""
        return self._ev("response.output_item.added", output_index=0,
                        item={"id": "fc_1", "type": "function_call", "status": "in_progress", "arguments": "",
                              "call_id": f"call_{self.rid}", "name": name})

    def tool_delta(self, fragment: str) -> bytes:
        self.args += fragment
        return self._ev("response.function_call_arguments.delta", delta=fragment, item_id="fc_1", output_index=0)

    def token(self, text: str, reasoning: bool) -> bytes:
        kind = "response.reasoning_summary_text.delta" if reasoning else "response.output_text.delta"
        return self._ev(kind, item_id="msg_1", output_index=0, content_index=0, delta=text)

    def finish(self, usage: Usage | None, reason: str = "stop") -> bytes:
        u = None if usage is None else {
            "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
            "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
            "total_tokens": usage.input_tokens + usage.output_tokens}
        out = b""
        item: dict[str, Any] = {"id": "msg_1", "type": "message"}
        if self.tool_mode:
            out = self._ev("response.function_call_arguments.done", arguments=self.args, item_id="fc_1", output_index=0)
            item = {"id": "fc_1", "type": "function_call", "status": "completed", "arguments": self.args}
        return out + self._ev("response.output_item.done", output_index=0, item=item) + \
            self._ev("response.completed", response=self._resp("completed", u))

    def error_event(self) -> bytes:
        return self._ev("error", code="server_error", message="simulated mid-stream failure", param=None)


class AnthropicEncoder(Encoder):
    protocol = "anthropic"

    def __init__(self, model: str, request_id: str) -> None:
        super().__init__(model, request_id)
        self.block: str | None = None
        self.index = -1

    def preamble(self) -> bytes:
        return sse({"type": "message_start", "message": {
            "id": f"msg_{self.rid}", "type": "message", "role": "assistant", "model": self.model, "content": [],
            "stop_reason": None, "usage": {"input_tokens": 21, "output_tokens": 1}}}, event="message_start")

    def _switch(self, kind: str) -> bytes:
        out = b""
        if self.block == kind:
            return out
        if self.block is not None:
            out += sse({"type": "content_block_stop", "index": self.index}, event="content_block_stop")
        self.index += 1
        self.block = kind
        start = {"type": "thinking", "thinking": "", "signature": ""} if kind == "thinking" else {"type": "text", "text": ""}
        out += sse({"type": "content_block_start", "index": self.index, "content_block": start}, event="content_block_start")
        if self.index == 0:
            out += sse({"type": "ping"}, event="ping")
        return out

    def token(self, text: str, reasoning: bool) -> bytes:
        kind = "thinking" if reasoning else "text"
        delta = {"type": "thinking_delta", "thinking": text} if reasoning else {"type": "text_delta", "text": text}
        return self._switch(kind) + sse({"type": "content_block_delta", "index": self.index, "delta": delta},
                                        event="content_block_delta")

    def tool_start(self, name: str) -> bytes:
        out = b""
        if self.block is not None:
            out += sse({"type": "content_block_stop", "index": self.index}, event="content_block_stop")
        self.index += 1
        self.block = "tool_use"
        out += sse({"type": "content_block_start", "index": self.index, "content_block": {
            "type": "tool_use", "id": f"toolu_{self.rid}", "name": name, "input": {}}}, event="content_block_start")
        return out + (sse({"type": "ping"}, event="ping") if self.index == 0 else b"")

    def tool_delta(self, fragment: str) -> bytes:
        return sse({"type": "content_block_delta", "index": self.index,
                    "delta": {"type": "input_json_delta", "partial_json": fragment}}, event="content_block_delta")

    def finish(self, usage: Usage | None, reason: str = "stop") -> bytes:
        out = b""
        if self.block is not None:
            out += sse({"type": "content_block_stop", "index": self.index}, event="content_block_stop")
        stop = {"length": "max_tokens", "tool_calls": "tool_use"}.get(reason, "end_turn")
        out += sse({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": {"output_tokens": usage.output_tokens if usage else 0}}, event="message_delta")
        return out + sse({"type": "message_stop"}, event="message_stop")

    def error_event(self) -> bytes:
        return sse({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, event="error")

    def error_body(self, status: int) -> dict[str, Any]:
        kind = {429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": f"simulated HTTP {status}"}}


class GeminiEncoder(Encoder):
    protocol = "gemini"

    def __init__(self, model: str, request_id: str) -> None:
        super().__init__(model, request_id)
        self.out = 0
        self.thoughts = 0

    def _ev(self, parts: list[dict[str, Any]], finish: str | None = None) -> bytes:
        cand: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish:
            cand["finishReason"] = finish
        usage: dict[str, Any] = {"promptTokenCount": 11, "candidatesTokenCount": self.out,
                                 "totalTokenCount": 11 + self.out + self.thoughts}
        if self.thoughts:
            usage["thoughtsTokenCount"] = self.thoughts
        return sse({"candidates": [cand], "usageMetadata": usage, "modelVersion": self.model,
                    "responseId": self.rid}, crlf=True)

    def token(self, text: str, reasoning: bool) -> bytes:
        if reasoning:
            self.thoughts += 1
            return self._ev([{"text": text, "thought": True}])
        self.out += 1
        return self._ev([{"text": text}])

    whole_tool_calls = True

    def tool_whole(self, name: str, args: dict[str, Any]) -> bytes:
        self.out += 1
        return self._ev([{"functionCall": {"name": name, "args": args}, "thoughtSignature": "c2lt"}])

    def finish(self, usage: Usage | None, reason: str = "stop") -> bytes:
        return self._ev([{"text": ""}], finish="MAX_TOKENS" if reason == "length" else "STOP")

    def error_event(self) -> bytes:
        return sse({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}, crlf=True)

    def malformed(self) -> bytes:
        return b'data: {"candidates": [{"content": \r\n\r\n'

    def error_body(self, status: int) -> dict[str, Any]:
        return {"error": {"code": status, "message": f"simulated HTTP {status}",
                          "status": "RESOURCE_EXHAUSTED" if status == 429 else "UNAVAILABLE"}}


class BedrockEncoder(Encoder):
    protocol = "bedrock"
    content_type = "application/vnd.amazon.eventstream"

    def preamble(self) -> bytes:
        return es_event("messageStart", {"role": "assistant"})

    def token(self, text: str, reasoning: bool) -> bytes:
        delta = {"reasoningContent": {"text": text}} if reasoning else {"text": text}
        return es_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": delta})

    def tool_start(self, name: str) -> bytes:
        return es_event("contentBlockStart", {"contentBlockIndex": 0,
                                              "start": {"toolUse": {"toolUseId": f"tooluse_{self.rid}", "name": name}}})

    def tool_delta(self, fragment: str) -> bytes:
        return es_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"toolUse": {"input": fragment}}})

    def finish(self, usage: Usage | None, reason: str = "stop") -> bytes:
        u = usage or Usage(0, 0, 0)
        stop = {"length": "max_tokens", "tool_calls": "tool_use"}.get(reason, "end_turn")
        return (es_event("contentBlockStop", {"contentBlockIndex": 0})
                + es_event("messageStop", {"stopReason": stop})
                + es_event("metadata", {"usage": {"inputTokens": u.input_tokens, "outputTokens": u.output_tokens,
                                                  "totalTokens": u.input_tokens + u.output_tokens},
                                        "metrics": {"latencyMs": 412}}))

    def error_event(self) -> bytes:
        payload = json.dumps({"message": "Too many tokens, please wait before trying again."}).encode()
        return es_frame({":exception-type": "throttlingException", ":content-type": "application/json",
                         ":message-type": "exception"}, payload)

    def malformed(self) -> bytes:
        return es_frame({":event-type": "contentBlockDelta", ":content-type": "application/json",
                         ":message-type": "event"}, b'{"contentBlockIndex":0,"delta":{"text":')

    def bad_crc(self) -> bytes:
        return es_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": " x"}}, corrupt=True)

    def error_body(self, status: int) -> dict[str, Any]:
        name = "ThrottlingException" if status == 429 else "ServiceUnavailableException"
        return {"message": f"simulated HTTP {status}", "__type": name}


class OllamaEncoder(Encoder):
    protocol = "ollama"
    content_type = "application/x-ndjson"

    def _line(self, obj: dict[str, Any]) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode() + b"\n"

    def token(self, text: str, reasoning: bool) -> bytes:
        msg = {"role": "assistant", "content": "", "thinking": text} if reasoning else {"role": "assistant", "content": text}
        return self._line({"model": self.model, "created_at": "2026-01-01T00:00:00Z", "message": msg, "done": False})

    whole_tool_calls = True

    def tool_whole(self, name: str, args: dict[str, Any]) -> bytes:
        call = {"id": f"call_{self.rid}", "function": {"index": 0, "name": name, "arguments": args}}
        return self._line({"model": self.model, "created_at": "2026-01-01T00:00:00Z",
                           "message": {"role": "assistant", "content": "", "tool_calls": [call]}, "done": False})

    def finish(self, usage: Usage | None, reason: str = "stop") -> bytes:
        u = usage or Usage(0, 0, 0)
        return self._line({"model": self.model, "message": {"role": "assistant", "content": ""}, "done": True,
                           "done_reason": "stop" if reason == "tool_calls" else reason, "total_duration": 512_000_000, "load_duration": 1_000_000,
                           "prompt_eval_count": u.input_tokens, "prompt_eval_duration": 20_000_000,
                           "eval_count": u.output_tokens, "eval_duration": 400_000_000})

    def error_event(self) -> bytes:
        return self._line({"error": "model runner has unexpectedly stopped"})

    def malformed(self) -> bytes:
        return b'{"model":"x","message":{"content":\n'

    def error_body(self, status: int) -> dict[str, Any]:
        return {"error": f"simulated HTTP {status}"}
