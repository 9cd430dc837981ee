"""Anthropic Messages streaming (docs/wire-formats.md §4): typed events, pings, padded JSON,
usage split between message_start (input) and message_delta (cumulative output)."""

from __future__ import annotations

import json
from typing import Any

from probes import shapes
from probes.framing import Frame
from probes.protocol import HttpRequest, Protocol, StreamEvent, ToolDelta, sse_object
from probes.protocols.openai_chat import common_headers, error_text
from probes.target import ProbeTarget

API_VERSION = "2023-06-01"


class AnthropicMessages(Protocol):
    kind = "anthropic"
    framing = "sse"

    def build_request(self, target: ProbeTarget, prompt: str) -> HttpRequest:
        p = target.probe
        content: str | list[dict[str, Any]] = prompt
        if p.image is not None:
            content = [
                {"type": "image", "source": {"type": "base64", "media_type": p.image.media_type,
                                             "data": p.image.b64}},
                {"type": "text", "text": prompt},
            ]
        body: dict[str, Any] = {
            "model": target.model,
            "max_tokens": p.max_tokens,
            "messages": [{"role": "user", "content": content}],
            "stream": True,
        }
        if p.tools:
            body["tools"] = [{"name": t.name, "description": t.description, "input_schema": t.parameters}
                             for t in p.tools]
        if p.system:
            body["system"] = p.system
        if p.reasoning:
            body["thinking"] = {"type": "enabled", "budget_tokens": p.reasoning_budget or 1024}
        elif p.temperature is not None:
            body["temperature"] = p.temperature
        headers = common_headers(target)
        headers["anthropic-version"] = API_VERSION
        if target.provider.api_key:
            headers["x-api-key"] = target.provider.api_key.get()
        return HttpRequest("POST", f"{target.provider.base_url}/messages", headers, json.dumps(body).encode())

    def parse(self, frame: Frame, state: dict[str, Any]) -> StreamEvent | None:
        got = sse_object(frame)
        if got is None:
            return None
        kind, obj = got
        if kind == "content_block_delta":
            d = shapes.obj(obj.get("delta"), "delta")
            dt = d.get("type")
            if dt == "text_delta":
                return StreamEvent(text=shapes.text(d.get("text"), "delta.text"))
            if dt == "thinking_delta":
                return StreamEvent(reasoning=shapes.text(d.get("thinking"), "delta.thinking"))
            if dt == "input_json_delta":
                return StreamEvent(tools=(ToolDelta(
                    index=shapes.index(obj.get("index"), "content_block_delta.index"),
                    arguments=shapes.text(d.get("partial_json"), "delta.partial_json")),))
            return None  # signature_delta, citations_delta: no generated text
        if kind == "content_block_start":
            block = shapes.obj(obj.get("content_block"), "content_block")
            if block.get("type") != "tool_use":
                return None  # text/thinking blocks open empty: their deltas are the tokens
            # the model chose the tool: that is its first generated output
            return StreamEvent(tools=(ToolDelta(
                index=shapes.index(obj.get("index"), "content_block_start.index"),
                name=shapes.opt_text(block.get("name"), "content_block.name") or "",
                arguments=""),))
        if kind == "message_start":
            message = shapes.obj(obj.get("message"), "message")
            u = shapes.obj(message.get("usage"), "message.usage")
            # message_start's output_tokens is a placeholder, not a count
            return StreamEvent(usage=shapes.usage("message.usage", input_tokens=u.get("input_tokens")))
        if kind == "message_delta":
            u = shapes.obj(obj.get("usage"), "usage")
            return StreamEvent(
                finish_reason=shapes.opt_text(shapes.obj(obj.get("delta"), "delta").get("stop_reason"),
                                              "delta.stop_reason"),
                usage=shapes.usage("usage", input_tokens=u.get("input_tokens"), output_tokens=u.get("output_tokens")),
            )
        if kind == "message_stop":
            return StreamEvent(terminal=True)
        if kind == "error":
            return StreamEvent(error=f"stream error: {error_text(obj.get('error') or obj)}")
        return None  # ping, content_block_stop, unknown events
