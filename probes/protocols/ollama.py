"""Ollama native /api/chat (wire-formats §8.1): NDJSON, `done: true` ends the stream and
carries token counts and server-side durations (ns)."""

from __future__ import annotations

import json
from typing import Any

from probes import shapes
from probes.framing import Frame
from probes.protocol import HttpRequest, Protocol, StreamEvent, StreamProtocolError, loads
from probes.protocols.openai_chat import chat_messages, common_headers, error_text
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
        body: dict[str, Any] = {"model": target.model, "messages": chat_messages(target, prompt),
                                "stream": True, "options": options}
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
