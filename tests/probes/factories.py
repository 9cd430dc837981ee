"""Shared helpers for the probes tests."""

from __future__ import annotations

import json

from core.secrets import Secret
from probes.runner import new_client, run_probe
from probes.target import Expectation, ProbeSpec, ProbeTarget, ProviderSpec
from tests.replay import ReplayServer, Script

TOL = 0.06  # scheduling slack on a shared 2-core VM; offsets below are >= 0.1 s apart


def chunk(delta: dict | None = None, choices: list | None = None, usage: dict | None = None, **extra: object) -> bytes:  # type: ignore[type-arg]
    obj = {"id": "c1", "object": "chat.completion.chunk",
           "choices": choices if choices is not None else [{"index": 0, "delta": delta or {}, "finish_reason": None}],
           "usage": usage, **extra}
    return f"data: {json.dumps(obj)}\n\n".encode()


ROLE_NULL = chunk({"role": "assistant", "content": None})


FINISH = chunk(choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}])


DONE = b"data: [DONE]\n\n"


async def probe(script: Script, kind: str = "openai", **kw: object):  # type: ignore[no-untyped-def]
    async with ReplayServer(script) as srv, new_client() as client:
        base = kw.pop("base", "/v1")
        r = await run_probe(client, target(kind, srv.url, base=base, **kw))  # type: ignore[arg-type]
        return r, srv


KINDS = {  # kind -> base path
    "openai": "/v1", "openai_compatible": "/v1", "openrouter": "/v1", "azure_openai": "", "openai_responses": "/v1",
    "anthropic": "/v1", "gemini": "/v1beta", "bedrock": "", "ollama": "",
}


def target(kind: str, url: str, *, key: str | None = None, timeout: float = 5.0,
           expect: Expectation | None = None, model: str = "m", base: str = "/v1") -> ProbeTarget:
    return ProbeTarget(
        ProviderSpec("p", kind, url + base, Secret(key) if key else None),
        model,
        ProbeSpec(expect=expect),
        timeout=timeout,
    )


