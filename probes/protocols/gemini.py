"""Gemini streamGenerateContent?alt=sse (docs/wire-formats.md §5): CRLF SSE, no end marker (the
stream closes after the event with finishReason), cumulative usageMetadata."""

from __future__ import annotations

import json
from typing import Any

from probes import shapes
from probes.framing import Frame
from probes.protocol import (
    HttpRequest,
    Protocol,
    StreamEvent,
    StreamProtocolError,
    ToolDelta,
    sse_json,
)
from probes.protocols.openai_chat import common_headers, error_text
from probes.target import ProbeTarget

# Finish reasons that mean the model stopped normally (or on the token limit).
_NORMAL = frozenset({"STOP", "MAX_TOKENS", "FINISH_REASON_UNSPECIFIED"})


class GeminiStream(Protocol):
    kind = "gemini"
    framing = "sse"

    def build_request(self, target: ProbeTarget, prompt: str) -> HttpRequest:
        p = target.probe
        gen: dict[str, Any] = {"maxOutputTokens": p.max_tokens}
        if p.temperature is not None:
            gen["temperature"] = p.temperature
        if p.reasoning:
            thinking: dict[str, Any] = {"includeThoughts": True}
            if p.reasoning_budget:
                thinking["thinkingBudget"] = p.reasoning_budget
            gen["thinkingConfig"] = thinking
        parts: list[dict[str, Any]] = [{"text": prompt}]
        if p.image is not None:
            parts.append({"inline_data": {"mime_type": p.image.media_type, "data": p.image.b64}})
        body: dict[str, Any] = {
            "contents": [{"role": "user", "parts": parts}],
            "generationConfig": gen,
        }
        if p.tools:
            body["tools"] = [{"functionDeclarations": [
                {"name": t.name, "description": t.description, "parameters": t.parameters} for t in p.tools]}]
        if p.system:
            body["systemInstruction"] = {"parts": [{"text": p.system}]}
        headers = common_headers(target)
        if target.provider.api_key:
            headers["x-goog-api-key"] = target.provider.api_key.get()  # never ?key= in the URL
        url = f"{target.provider.base_url}/models/{target.model}:streamGenerateContent?alt=sse"
        return HttpRequest("POST", url, headers, json.dumps(body).encode())

    def parse(self, frame: Frame, state: dict[str, Any]) -> StreamEvent | None:
        got = sse_json(frame)
        if got is None:
            return None
        obj = got[1]
        if isinstance(obj, list) and obj:  # a proxy may send the JSON-array framing's elements
            obj = obj[0]
        if not isinstance(obj, dict):
            raise StreamProtocolError(f"unexpected JSON in stream: {str(obj)[:80]!r}")
        if obj.get("error"):
            return StreamEvent(error=f"stream error: {error_text(obj['error'])}")
        ev = StreamEvent()
        feedback = shapes.obj(obj.get("promptFeedback"), "promptFeedback")
        block = feedback.get("blockReason")
        if block:
            ev.error = f"prompt blocked: {error_text(block)}"
            return ev
        text: list[str] = []
        thoughts: list[str] = []
        tools: list[ToolDelta] = []
        for cand in shapes.arr(obj.get("candidates"), "candidates"):
            cand = shapes.obj(cand, "a candidate")
            content = shapes.obj(cand.get("content"), "candidates[].content")
            for part in shapes.arr(content.get("parts"), "content.parts"):
                part = shapes.obj(part, "a content part")
                t = shapes.text(part.get("text"), "parts[].text")
                if t:
                    (thoughts if part.get("thought") else text).append(t)
                elif "functionCall" in part:
                    # a call arrives whole (name and args in one part), never in pieces
                    call = shapes.obj(part["functionCall"], "parts[].functionCall")
                    n = state.get("tool_calls", 0)
                    state["tool_calls"] = n + 1
                    tools.append(ToolDelta(index=n, name=shapes.opt_text(call.get("name"), "functionCall.name") or "",
                                           arguments=shapes.tool_args(call.get("args"), "functionCall.args")))
            reason = shapes.opt_text(cand.get("finishReason"), "candidates[].finishReason")
            if reason:
                ev.finish_reason = "max_tokens" if reason == "MAX_TOKENS" else reason.lower()
                ev.terminal = True
                if reason not in _NORMAL:
                    ev.error = f"generation stopped: finishReason={reason[:80]}"
        ev.text = "".join(text)
        ev.reasoning = "".join(thoughts)
        ev.tools = tuple(tools)
        um = obj.get("usageMetadata")
        if um is not None:
            um = shapes.obj(um, "usageMetadata")
            u = shapes.usage("usageMetadata", input_tokens=um.get("promptTokenCount"),
                               output_tokens=um.get("candidatesTokenCount"),
                               reasoning_tokens=um.get("thoughtsTokenCount"))
            # candidatesTokenCount excludes thinking; output_tokens counts both, as OpenAI does.
            cand_tokens, thoughts_tokens = u.output_tokens, u.reasoning_tokens
            if cand_tokens is not None or thoughts_tokens is not None:
                u.output_tokens = (cand_tokens or 0) + (thoughts_tokens or 0)
            ev.usage = u
        return ev
