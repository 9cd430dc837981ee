"""Ollama native /api/chat (docs/wire-formats.md §8.1): NDJSON, `done: true` ends the stream and
carries token counts and server-side durations (ns)."""

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
    loads,
)
from probes.protocols.openai_chat import common_headers, error_text, function_tools
from probes.target import ProbeTarget

_DURATIONS = {"total_duration": "total", "load_duration": "load", "prompt_eval_duration": "prompt_eval",
              "eval_duration": "eval"}


class OllamaChat(Protocol):
    kind = "ollama"
    framing = "ndjson"

    def build_request(self, target: ProbeTarget, prompt: str) -> HttpRequest:
        p = target.probe
        options: dict[str, Any] = {"num_predict": p.max_tokens}
        if p.temperature is not None:
            options["temperature"] = p.temperature
        messages: list[dict[str, Any]] = [{"role": "system", "content": p.system}] if p.system else []
        user: dict[str, Any] = {"role": "user", "content": prompt}
        if p.image is not None:
            user["images"] = [p.image.b64]  # base64, no data: prefix
        messages.append(user)
        body: dict[str, Any] = {"model": target.model, "messages": messages, "stream": True, "options": options}
        if p.tools:
            body["tools"] = function_tools(target)
        if p.reasoning:
            body["think"] = True
        headers = common_headers(target)
        headers["accept"] = "application/x-ndjson"
        if target.provider.api_key:
            headers["authorization"] = f"Bearer {target.provider.api_key.get()}"
        return HttpRequest("POST", f"{target.provider.base_url}/api/chat", headers, json.dumps(body).encode())

    def parse(self, frame: Frame, state: dict[str, Any]) -> StreamEvent | None:
        if not isinstance(frame, str):
            raise StreamProtocolError("expected an NDJSON line")
        obj = loads(frame)
        if not isinstance(obj, dict):
            raise StreamProtocolError(f"unexpected JSON in stream: {frame[:80]!r}")
        if obj.get("error"):
            return StreamEvent(error=f"stream error: {error_text(obj['error'])}")
        msg = shapes.obj(obj.get("message"), "message")
        ev = StreamEvent(text=shapes.text(msg.get("content"), "message.content"),
                         reasoning=shapes.text(msg.get("thinking"), "message.thinking"))
        calls = shapes.arr(msg.get("tool_calls"), "message.tool_calls")
        if calls:
            # each call arrives whole, arguments as an object
            n = state.get("tool_calls", 0)
            tools = []
            for i, call in enumerate(calls):
                function = shapes.obj(shapes.obj(call, "a tool call").get("function"), "tool_calls[].function")
                tools.append(ToolDelta(
                    index=n + i, name=shapes.opt_text(function.get("name"), "tool_calls[].function.name") or "",
                    arguments=shapes.tool_args(function.get("arguments"), "tool_calls[].function.arguments")))
            state["tool_calls"] = n + len(calls)
            ev.tools = tuple(tools)
        if shapes.flag(obj.get("done"), "done"):
            ev.terminal = True
            ev.finish_reason = shapes.opt_text(obj.get("done_reason"), "done_reason") or "stop"
            ev.usage = shapes.usage("final line", input_tokens=obj.get("prompt_eval_count"),
                                    output_tokens=obj.get("eval_count"))
            for src, dst in _DURATIONS.items():
                ns = shapes.num(obj.get(src), src)
                if ns is not None:
                    ev.server_timing[dst] = ns / 1e9
        return ev
