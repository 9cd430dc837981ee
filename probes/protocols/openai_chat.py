"""OpenAI Chat Completions streaming, and every server that speaks it (docs/wire-formats.md §1, §7, §8).

Serves kinds `openai` and `openai_compatible` (vLLM, llama.cpp, Ollama /v1, Groq, Together,
Mistral, DeepSeek, ...) and, through a subclass, `openrouter`.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from probes import shapes
from probes.framing import Frame, SSEEvent
from probes.protocol import (
    HttpRequest,
    Protocol,
    ProviderOption,
    StreamEvent,
    StreamProtocolError,
    ToolDelta,
    loads,
)
from probes.shapes import arr
from probes.target import ProbeTarget

_MS = 1000.0


def chat_messages(target: ProbeTarget, prompt: str) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = []
    if target.probe.system:
        msgs.append({"role": "system", "content": target.probe.system})
    image = target.probe.image
    if image is None:
        msgs.append({"role": "user", "content": prompt})
    else:
        msgs.append({"role": "user", "content": [
            {"type": "text", "text": prompt},
            {"type": "image_url", "image_url": {"url": f"data:{image.media_type};base64,{image.b64}"}},
        ]})
    return msgs


def function_tools(target: ProbeTarget) -> list[dict[str, Any]]:
    """Tools in the Chat Completions form (Ollama's /api/chat takes the same)."""
    return [{"type": "function", "function": {"name": t.name, "description": t.description,
                                              "parameters": t.parameters}}
            for t in target.probe.tools]


def common_headers(target: ProbeTarget) -> dict[str, str]:
    h = {"content-type": "application/json", "accept": "text/event-stream"}
    h.update(dict(target.provider.headers))
    return h


def error_text(err: Any) -> str:
    """A short reason from a provider's error object (whatever shape it has)."""
    if isinstance(err, dict):
        msg = err.get("message") or err.get("type") or err.get("code") or json.dumps(err)[:200]
        kind = err.get("type") or err.get("code")
        out = f"{kind}: {msg}" if kind and kind != msg else str(msg)
    else:
        out = str(err)
    return " ".join(out[:400].split())[:200]


_PLAIN_DELTA = frozenset({"content", "role"})


def _plain_token(obj: dict[str, Any]) -> StreamEvent | None:
    """The event of the shape nearly every token chunk has (one choice, a delta of only
    `content` text and `role`, no finish reason, usage, timings or checkpoint), without
    the general parser's checks of every field: that was ~40% of the CPU a 64-token
    probe spends in our own code. Anything else: None (the general path), which gives
    the same event for this shape (tests/test_framing.py)."""
    choices = obj.get("choices")
    if type(choices) is not list or len(choices) != 1:
        return None
    choice = choices[0]
    if type(choice) is not dict or choice.get("finish_reason") is not None:
        return None
    delta = choice.get("delta")
    if type(delta) is not dict or not _PLAIN_DELTA.issuperset(delta):
        return None
    content = delta.get("content")
    if type(content) is not str or obj.get("usage") is not None or obj.get("timings") is not None \
            or obj.get("latency_checkpoint") is not None:
        return None
    return StreamEvent(text=content)


class OpenAIChat(Protocol):
    kind = "openai"
    framing = "sse"
    provider_options: ClassVar[tuple[ProviderOption, ...]] = (
        ProviderOption("max_completion_tokens", "send max_completion_tokens instead of max_tokens (OpenAI "
                       "reasoning models refuse max_tokens)", type="flag"),
    )

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
        if target.probe.tools:
            body["tools"] = function_tools(target)
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
        bare = data.strip()
        if bare == "[DONE]":
            return StreamEvent(terminal=True)
        if not bare:
            return None
        obj = loads(data)
        if not isinstance(obj, dict):
            raise StreamProtocolError(f"unexpected JSON in stream: {data[:80]!r}")
        if obj.get("error"):
            return StreamEvent(error=f"stream error: {error_text(obj['error'])}")
        if obj.get("object") == "error":  # old vLLM
            return StreamEvent(error=f"stream error: {error_text(obj.get('message', 'unknown'))}")
        return self.chunk(obj)

    def chunk(self, obj: dict[str, Any]) -> StreamEvent | None:
        plain = _plain_token(obj)
        if plain is not None:
            return plain
        ev = StreamEvent()
        text: list[str] = []
        reasoning: list[str] = []
        tools: list[ToolDelta] = []
        for choice in arr(obj.get("choices"), "choices"):
            choice = shapes.obj(choice, "a choice")
            delta = shapes.obj(choice.get("delta"), "choices[].delta")
            content = delta.get("content")
            if isinstance(content, list):  # Mistral content chunks
                for part in content:
                    if isinstance(part, dict):
                        if part.get("type") == "thinking":
                            for t in arr(part.get("thinking"), "content[].thinking"):
                                if isinstance(t, dict):
                                    reasoning.append(shapes.text(t.get("text"), "content[].thinking[].text"))
                        elif part.get("text") is not None:
                            text.append(shapes.text(part.get("text"), "content[].text"))
            else:
                text.append(shapes.text(content, "delta.content"))
            text.append(shapes.text(delta.get("refusal"), "delta.refusal"))
            for i, call in enumerate(arr(delta.get("tool_calls"), "delta.tool_calls")):
                call = shapes.obj(call, "a tool call")
                function = shapes.obj(call.get("function"), "tool_calls[].function")
                # the first delta names the function (arguments ""); later ones carry argument text
                tools.append(ToolDelta(
                    index=shapes.index(call.get("index"), "tool_calls[].index", i),
                    name=shapes.opt_text(function.get("name"), "tool_calls[].function.name"),
                    arguments=shapes.text(function.get("arguments"), "tool_calls[].function.arguments")))
            for key in ("reasoning_content", "reasoning"):
                r = delta.get(key)
                # OpenRouter's `reasoning` may be an object; only text is a token here
                if isinstance(r, str) and r:
                    reasoning.append(r)
                    break  # vLLM sends both as duplicates
            reason = shapes.opt_text(choice.get("finish_reason"), "choices[].finish_reason")
            if reason:
                ev.finish_reason = reason
        ev.text = "".join(text)
        ev.reasoning = "".join(reasoning)
        ev.tools = tuple(t for t in tools if t.name or t.arguments)
        usage = obj.get("usage")
        if usage is not None:
            usage = shapes.obj(usage, "usage")
            details = shapes.obj(usage.get("completion_tokens_details"), "usage.completion_tokens_details")
            ev.usage = shapes.usage(
                "usage",
                input_tokens=usage.get("prompt_tokens"),
                output_tokens=usage.get("completion_tokens"),
                reasoning_tokens=details.get("reasoning_tokens"),
            )
            checkpoint = usage.get("latency_checkpoint")
        else:
            checkpoint = None
        timings = shapes.obj(obj.get("timings"), "timings")  # llama.cpp server timings, in ms
        for src, dst in (("prompt_ms", "prompt_eval"), ("predicted_ms", "eval")):
            ms = shapes.num(timings.get(src), f"timings.{src}")
            if ms is not None:
                ev.server_timing[dst] = ms / _MS
        checkpoint = shapes.obj(checkpoint or obj.get("latency_checkpoint"), "latency_checkpoint")
        for key, value in checkpoint.items():  # Azure v1: server-side ttft
            if key.endswith("_ms"):
                ms = shapes.num(value, f"latency_checkpoint.{key}")
                if ms is not None:
                    ev.server_timing[key[:-3]] = ms / _MS
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
