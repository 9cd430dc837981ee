"""AWS Bedrock ConverseStream (docs/wire-formats.md §6): binary event-stream frames (decoded and
CRC-checked by botocore), SigV4 via botocore's signer or a Bedrock API key (Bearer)."""

from __future__ import annotations

import json
from typing import Any, ClassVar
from urllib.parse import quote

from core.secrets import Secret
from probes import shapes
from probes.framing import EventStreamFrame, Frame
from probes.protocol import (
    HttpRequest,
    Protocol,
    ProviderOption,
    StreamEvent,
    StreamProtocolError,
    ToolDelta,
    loads,
)
from probes.protocols.openai_chat import error_text
from probes.target import ProbeTarget

SIGNING_NAME = "bedrock"  # not "bedrock-runtime": the service model's signingName


def _secret(options: dict[str, Any], name: str) -> str | None:
    v = options.get(name)
    return v.get() if isinstance(v, Secret) else None


class BedrockConverseStream(Protocol):
    kind = "bedrock"
    framing = "eventstream"

    def __init__(self) -> None:
        # botocore (the event-stream decoder, SigV4) is 16 MB of RSS a daemon without
        # Bedrock targets never loads; with them it is loaded here, when the config names
        # one (registry.prepare), not on the event loop at the first probe
        import botocore.auth
        import botocore.eventstream  # noqa: F401
    provider_options: ClassVar[tuple[ProviderOption, ...]] = (
        ProviderOption("aws_region", "AWS region of the endpoint and of the SigV4 signature", option="region",
                       default="us-east-1"),
        ProviderOption("aws_access_key_id_env", "environment variable holding the AWS access key id (SigV4)",
                       option="aws_access_key_id", type="secret_env"),
        ProviderOption("aws_secret_access_key_env", "environment variable holding the AWS secret access key",
                       option="aws_secret_access_key", type="secret_env"),
        ProviderOption("aws_session_token_env", "environment variable holding an AWS session token (temporary "
                       "credentials)", option="aws_session_token", type="secret_env"),
    )

    def build_request(self, target: ProbeTarget, prompt: str) -> HttpRequest:
        p = target.probe
        opts = target.provider.options
        region = opts.get("region") or "us-east-1"
        base = target.provider.base_url or f"https://bedrock-runtime.{region}.amazonaws.com"
        # The model id (may contain ':' or be an ARN) is one percent-encoded path segment.
        url = f"{base}/model/{quote(target.model, safe='')}/converse-stream"
        inference: dict[str, Any] = {"maxTokens": p.max_tokens}
        if p.temperature is not None and not p.reasoning:
            inference["temperature"] = p.temperature
        content: list[dict[str, Any]] = [{"text": prompt}]
        if p.image is not None:
            # the JSON form of a blob is base64 (botocore encodes `bytes` the same way)
            content.append({"image": {"format": p.image.format, "source": {"bytes": p.image.b64}}})
        body: dict[str, Any] = {
            "messages": [{"role": "user", "content": content}],
            "inferenceConfig": inference,
        }
        if p.tools:
            body["toolConfig"] = {"tools": [
                {"toolSpec": {"name": t.name, "description": t.description, "inputSchema": {"json": t.parameters}}}
                for t in p.tools]}
        if p.system:
            body["system"] = [{"text": p.system}]
        if p.reasoning:
            body["additionalModelRequestFields"] = {
                "thinking": {"type": "enabled", "budget_tokens": p.reasoning_budget or 1024}
            }
        data = json.dumps(body).encode()
        headers = {"content-type": "application/json", "accept": "application/vnd.amazon.eventstream"}
        headers.update(dict(target.provider.headers))
        if target.provider.api_key:
            headers["authorization"] = f"Bearer {target.provider.api_key.get()}"
            return HttpRequest("POST", url, headers, data)
        access, secret = _secret(opts, "aws_access_key_id"), _secret(opts, "aws_secret_access_key")
        if access and secret:
            from botocore.auth import SigV4Auth
            from botocore.awsrequest import AWSRequest
            from botocore.credentials import Credentials

            creds = Credentials(access, secret, _secret(opts, "aws_session_token"))
            aws = AWSRequest(method="POST", url=url, data=data, headers=headers)
            SigV4Auth(creds, SIGNING_NAME, region).add_auth(aws)
            # Send exactly what was signed: same URL string, same body bytes, signed headers.
            headers = {k.lower(): v for k, v in aws.headers.items()}
        return HttpRequest("POST", url, headers, data)

    def parse(self, frame: Frame, state: dict[str, Any]) -> StreamEvent | None:
        if not isinstance(frame, EventStreamFrame):
            raise StreamProtocolError("expected an event-stream frame")
        mtype = frame.message_type
        if mtype == "exception":
            name = frame.event_type or "exception"
            try:
                msg = json.loads(frame.payload or b"{}").get("message", "")
            except (ValueError, AttributeError):
                msg = frame.payload[:200].decode("utf-8", "replace")
            return StreamEvent(error=f"{name}: {error_text(msg)}"[:300], rate_limited=name == "throttlingException")
        if mtype == "error":
            code = frame.headers.get(":error-code", "error")
            return StreamEvent(error=f"{code}: {frame.headers.get(':error-message', '')}"[:300])
        obj = loads(frame.payload) if frame.payload else {}
        if not isinstance(obj, dict):
            raise StreamProtocolError("unexpected JSON in event-stream frame")
        event = frame.event_type
        if event == "contentBlockDelta":
            delta = shapes.obj(obj.get("delta"), "delta")
            text = delta.get("text")
            if text is not None:
                return StreamEvent(text=shapes.text(text, "delta.text"))
            rc = shapes.obj(delta.get("reasoningContent"), "delta.reasoningContent")
            if rc.get("text") is not None:
                return StreamEvent(reasoning=shapes.text(rc["text"], "reasoningContent.text"))
            tool = shapes.obj(delta.get("toolUse"), "delta.toolUse")
            if tool.get("input") is not None:
                return StreamEvent(tools=(ToolDelta(
                    index=shapes.index(obj.get("contentBlockIndex"), "contentBlockIndex"),
                    arguments=shapes.text(tool["input"], "toolUse.input")),))
            return None
        if event == "contentBlockStart":
            start = shapes.obj(obj.get("start"), "start")
            if "toolUse" not in start:
                return None
            tool = shapes.obj(start["toolUse"], "start.toolUse")
            return StreamEvent(tools=(ToolDelta(
                index=shapes.index(obj.get("contentBlockIndex"), "contentBlockIndex"),
                name=shapes.opt_text(tool.get("name"), "start.toolUse.name") or ""),))
        if event == "messageStop":
            return StreamEvent(finish_reason=shapes.opt_text(obj.get("stopReason"), "stopReason"))
        if event == "metadata":
            u = shapes.obj(obj.get("usage"), "usage")
            ev = StreamEvent(terminal=True, usage=shapes.usage("usage", input_tokens=u.get("inputTokens"),
                                                               output_tokens=u.get("outputTokens")))
            latency = shapes.num(shapes.obj(obj.get("metrics"), "metrics").get("latencyMs"), "metrics.latencyMs")
            if latency is not None:
                ev.server_timing["latency"] = latency / 1000
            return ev
        return None  # messageStart, contentBlockStop
