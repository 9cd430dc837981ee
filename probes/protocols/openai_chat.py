"""OpenAI Chat Completions streaming, and every server that speaks it (wire-formats §1, §7, §8).

Serves kinds `openai` and `openai_compatible` (vLLM, llama.cpp, Ollama /v1, Groq, Together,
Mistral, DeepSeek, ...) and, through a subclass, `openrouter`.
"""

from __future__ import annotations

import json
from typing import Any

from probes.framing import Frame, SSEEvent
from probes.protocol import HttpRequest, Protocol, StreamEvent, StreamProtocolError, Usage, loads
from probes.target import ProbeTarget

_MS = 1000.0


def chat_messages(target: ProbeTarget, prompt: str) -> list[dict[str, str]]:
    msgs = []
    if target.probe.system:
        msgs.append({"role": "system", "content": target.probe.system})
    msgs.append({"role": "user", "content": prompt})
    return msgs


def common_headers(target: ProbeTarget) -> dict[str, str]:
    h = {"content-type": "application/json", "accept": "text/event-stream"}
    h.update(dict(target.provider.headers))
    return h


def error_text(err: Any) -> str:
    if isinstance(err, dict):
        msg = err.get("message") or err.get("type") or err.get("code") or json.dumps(err)[:200]
        kind = err.get("type") or err.get("code")
        return f"{kind}: {msg}" if kind and kind != msg else str(msg)
    return str(err)[:200]


class OpenAIChat(Protocol):
    kind = "openai"
    framing = "sse"

    def url(self, target: ProbeTarget) -> str:
        return f"{target.provider.base_url}/chat/completions"

    def auth_headers(self, target: ProbeTarget) -> dict[str, str]:
        key = target.provider.api_key
        return {"authorization": f"Bearer {key.get()}"} if key else {}

    def body(self, target: ProbeTarget, prompt: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": target.model,
            "messages": chat_messages(target, prompt),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if target.provider.options.get("max_completion_tokens"):
            body["max_completion_tokens"] = target.probe.max_tokens
        else:
            body["max_tokens"] = target.probe.max_tokens
        if target.probe.temperature is not None:
            body["temperature"] = target.probe.temperature
        return body

    def build_request(self, target: ProbeTarget, prompt: str) -> HttpRequest:
        headers = common_headers(target)
        headers.update(self.auth_headers(target))
        return HttpRequest("POST", self.url(target), headers, json.dumps(self.body(target, prompt)).encode())

    def parse(self, frame: Frame, state: dict[str, Any]) -> StreamEvent | None:
        if not isinstance(frame, SSEEvent):
            raise StreamProtocolError("expected an SSE event")
        for name, value in frame.extra:
            if name == "error":  # llama.cpp before PR #16109: a non-standard `error:` field
                return StreamEvent(error=f"stream error: {value[:200]}")
        data = frame.data
        if data.strip() == "[DONE]":
            return StreamEvent(terminal=True)
        if not data.strip():
            return None
        obj = loads(data)
        if not isinstance(obj, dict):
            raise StreamProtocolError(f"unexpected JSON in stream: {data[:80]!r}")
        if obj.get("error"):
            return StreamEvent(error=f"stream error: {error_text(obj['error'])}")
        if obj.get("object") == "error":  # old vLLM
            return StreamEvent(error=f"stream error: {obj.get('message', 'unknown')}")
        return self.chunk(obj)

    def chunk(self, obj: dict[str, Any]) -> StreamEvent | None:
        ev = StreamEvent()
        text: list[str] = []
        reasoning: list[str] = []
        for choice in obj.get("choices") or ():
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if isinstance(content, str):
                text.append(content)
            elif isinstance(content, list):  # Mistral content chunks
                for part in content:
                    if isinstance(part, dict):
                        if part.get("type") == "thinking":
                            reasoning.extend(str(t.get("text", "")) for t in part.get("thinking") or () if isinstance(t, dict))
                        elif isinstance(part.get("text"), str):
                            text.append(part["text"])
            if isinstance(delta.get("refusal"), str):
                text.append(delta["refusal"])
            for call in delta.get("tool_calls") or ():
                args = (call.get("function") or {}).get("arguments")
                if isinstance(args, str):
                    text.append(args)
            for key in ("reasoning_content", "reasoning"):
                r = delta.get(key)
                if isinstance(r, str) and r:
                    reasoning.append(r)
                    break  # vLLM sends both as duplicates
            if choice.get("finish_reason"):
                ev.finish_reason = choice["finish_reason"]
        ev.text = "".join(text)
        ev.reasoning = "".join(reasoning)
        usage = obj.get("usage")
        if isinstance(usage, dict):
            details = usage.get("completion_tokens_details") or {}
            ev.usage = Usage(
                input_tokens=usage.get("prompt_tokens"),
                output_tokens=usage.get("completion_tokens"),
                reasoning_tokens=details.get("reasoning_tokens") if isinstance(details, dict) else None,
            )
        timings = obj.get("timings")  # llama.cpp server timings, in ms
        if isinstance(timings, dict):
            for src, dst in (("prompt_ms", "prompt_eval"), ("predicted_ms", "eval")):
                if isinstance(timings.get(src), int | float):
                    ev.server_timing[dst] = timings[src] / _MS
        checkpoint = (obj.get("usage") or {}).get("latency_checkpoint") if isinstance(obj.get("usage"), dict) else None
        checkpoint = checkpoint or obj.get("latency_checkpoint")
        if isinstance(checkpoint, dict):  # Azure v1: server-side ttft
            for key, value in checkpoint.items():
                if key.endswith("_ms") and isinstance(value, int | float):
                    ev.server_timing[key[:-3]] = value / _MS
        return ev


class OpenRouterChat(OpenAIChat):
    """OpenRouter: OpenAI chunks plus `: OPENROUTER PROCESSING` comments (dropped by the
    SSE decoder) and errors as a chunk with `finish_reason: "error"`."""

    kind = "openrouter"

    def chunk(self, obj: dict[str, Any]) -> StreamEvent | None:
        ev = super().chunk(obj)
        if ev is not None and ev.finish_reason == "error":
            ev.error = "stream error: provider returned finish_reason=error"
        return ev
