"""OpenAI Responses API streaming (docs/wire-formats.md §2): typed events, no [DONE]; the stream
ends after response.completed / response.incomplete / response.failed."""

from __future__ import annotations

import json
from typing import Any

from probes import shapes
from probes.framing import Frame
from probes.protocol import HttpRequest, Protocol, StreamEvent, ToolDelta, Usage, sse_object
from probes.protocols.openai_chat import common_headers, error_text
from probes.target import ProbeTarget

_TEXT = frozenset({"response.output_text.delta", "response.refusal.delta"})
_REASONING = frozenset({"response.reasoning_summary_text.delta", "response.reasoning_text.delta"})


class OpenAIResponses(Protocol):
    kind = "openai_responses"
    framing = "sse"

    def build_request(self, target: ProbeTarget, prompt: str) -> HttpRequest:
        image = target.probe.image
        body: dict[str, Any] = {
            "model": target.model,
            "input": prompt if image is None else [{"role": "user", "content": [
                {"type": "input_text", "text": prompt},
                {"type": "input_image", "image_url": f"data:{image.media_type};base64,{image.b64}"},
            ]}],
            "stream": True,
            "store": False,
            "max_output_tokens": target.probe.max_tokens,
        }
        if target.probe.system:
            body["instructions"] = target.probe.system
        if target.probe.temperature is not None and not target.probe.reasoning:
            body["temperature"] = target.probe.temperature
        if target.probe.reasoning:
            body["reasoning"] = {"summary": "auto"}
        if target.probe.tools:
            body["tools"] = [{"type": "function", "name": t.name, "description": t.description,
                              "parameters": t.parameters} for t in target.probe.tools]
        headers = common_headers(target)
        if target.provider.api_key:
            headers["authorization"] = f"Bearer {target.provider.api_key.get()}"
        return HttpRequest("POST", f"{target.provider.base_url}/responses", headers, json.dumps(body).encode())

    def parse(self, frame: Frame, state: dict[str, Any]) -> StreamEvent | None:
        got = sse_object(frame)
        if got is None:
            return None
        kind, obj = got
        if kind in _TEXT:
            return StreamEvent(text=shapes.text(obj.get("delta"), f"{kind}.delta"))
        if kind == "response.output_item.added":
            item = shapes.obj(obj.get("item"), f"{kind}.item")
            if item.get("type") != "function_call":
                return None  # a message or reasoning item opening: not generated text yet
            return StreamEvent(tools=(ToolDelta(
                index=shapes.index(obj.get("output_index"), f"{kind}.output_index"),
                name=shapes.opt_text(item.get("name"), f"{kind}.item.name"),
                arguments=shapes.text(item.get("arguments"), f"{kind}.item.arguments")),))
        if kind == "response.function_call_arguments.delta":
            return StreamEvent(tools=(ToolDelta(
                index=shapes.index(obj.get("output_index"), f"{kind}.output_index"),
                arguments=shapes.text(obj.get("delta"), f"{kind}.delta")),))
        if kind in _REASONING:
            return StreamEvent(reasoning=shapes.text(obj.get("delta"), f"{kind}.delta"))
        if kind == "error":
            err = obj.get("error") if isinstance(obj.get("error"), dict) else obj
            return StreamEvent(error=f"stream error: {error_text(err)}")
        if kind in ("response.completed", "response.incomplete", "response.failed"):
            resp = shapes.obj(obj.get("response"), f"{kind}.response")
            ev = StreamEvent(terminal=True, usage=_usage(resp.get("usage")))
            if kind == "response.incomplete":
                details = shapes.obj(resp.get("incomplete_details"), "response.incomplete_details")
                ev.finish_reason = shapes.opt_text(details.get("reason"), "incomplete_details.reason") or "incomplete"
            elif kind == "response.failed":
                ev.error = f"response failed: {error_text(resp.get('error') or 'unknown error')}"
            else:
                ev.finish_reason = "stop"
            return ev
        return None


def _usage(u: Any) -> Usage | None:
    if u is None:
        return None
    u = shapes.obj(u, "response.usage")
    details = shapes.obj(u.get("output_tokens_details"), "usage.output_tokens_details")
    return shapes.usage(
        "response.usage",
        input_tokens=u.get("input_tokens"),
        output_tokens=u.get("output_tokens"),
        reasoning_tokens=details.get("reasoning_tokens"),
    )
