"""Gemini streamGenerateContent?alt=sse (wire-formats §5): CRLF SSE, no end marker (the
stream closes after the event with finishReason), cumulative usageMetadata."""

from __future__ import annotations

import json
from typing import Any

from probes.framing import Frame
from probes.protocol import HttpRequest, Protocol, StreamEvent, StreamProtocolError, Usage, sse_json
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
        body: dict[str, Any] = {
            "contents": [{"role": "user", "parts": [{"text": prompt}]}],
            "generationConfig": gen,
        }
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
        block = (obj.get("promptFeedback") or {}).get("blockReason")
        if block:
            ev.error = f"prompt blocked: {block}"
            return ev
        text: list[str] = []
        thoughts: list[str] = []
        for cand in obj.get("candidates") or ():
            for part in (cand.get("content") or {}).get("parts") or ():
                t = part.get("text")
                if isinstance(t, str) and t:
                    (thoughts if part.get("thought") else text).append(t)
                elif "functionCall" in part:
                    text.append(json.dumps(part["functionCall"].get("args") or {}))
            reason = cand.get("finishReason")
            if reason:
                ev.finish_reason = "max_tokens" if reason == "MAX_TOKENS" else reason.lower()
                ev.terminal = True
                if reason not in _NORMAL:
                    ev.error = f"generation stopped: finishReason={reason}"
        ev.text = "".join(text)
        ev.reasoning = "".join(thoughts)
        um = obj.get("usageMetadata")
        if isinstance(um, dict):
            # candidatesTokenCount excludes thinking; output_tokens counts both, as OpenAI does.
            cand_tokens = um.get("candidatesTokenCount")
            thoughts_tokens = um.get("thoughtsTokenCount")
            out = None if cand_tokens is None and thoughts_tokens is None else (cand_tokens or 0) + (thoughts_tokens or 0)
            ev.usage = Usage(input_tokens=um.get("promptTokenCount"), output_tokens=out, reasoning_tokens=thoughts_tokens)
        return ev
