"""OpenAI Responses API streaming (wire-formats §2): typed events, no [DONE]; the stream
ends after response.completed / response.incomplete / response.failed."""

from __future__ import annotations

import json
from typing import Any

from probes import shapes
from probes.framing import Frame
from probes.protocol import HttpRequest, Protocol, StreamEvent, Usage, sse_object
from probes.protocols.openai_chat import common_headers, error_text
from probes.target import ProbeTarget

_TEXT = frozenset({"response.output_text.delta", "response.refusal.delta", "response.function_call_arguments.delta"})
_REASONING = frozenset({"response.reasoning_summary_text.delta", "response.reasoning_text.delta"})


class OpenAIResponses(Protocol):
    kind = "openai_responses"
    framing = "sse"

    def build_request(self, target: ProbeTarget, prompt: str) -> HttpRequest:
        body: dict[str, Any] = {
            "model": target.model,
            "input": prompt,
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
