"""Provider `kind` (config) → wire protocol. A new provider: one module + one line here."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterable
from functools import cache

from probes.protocol import Protocol, ProviderOption

# module:Class, imported on first use so a broken optional protocol can't stop the others.
PROTOCOLS: dict[str, str] = {
    "openai": "probes.protocols.openai_chat:OpenAIChat",
    "openai_compatible": "probes.protocols.openai_chat:OpenAIChat",
    "openrouter": "probes.protocols.openai_chat:OpenRouterChat",
    "azure_openai": "probes.protocols.azure_openai:AzureOpenAIChat",
    "openai_responses": "probes.protocols.openai_responses:OpenAIResponses",
    "anthropic": "probes.protocols.anthropic:AnthropicMessages",
    "gemini": "probes.protocols.gemini:GeminiStream",
    "bedrock": "probes.protocols.bedrock:BedrockConverseStream",
    "ollama": "probes.protocols.ollama:OllamaChat",
}


def kinds() -> list[str]:
    return sorted(PROTOCOLS)


@cache
def protocol_class(kind: str) -> type[Protocol]:
    try:
        ref = PROTOCOLS[kind]
    except KeyError:
        raise ValueError(f"unknown provider kind {kind!r} (known: {', '.join(kinds())})") from None
    module, _, cls = ref.partition(":")
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


@cache
def protocol_for(kind: str) -> Protocol:
    return protocol_class(kind)()


def prepare(kinds: Iterable[str]) -> None:
    """Make the protocols of these provider kinds now (the config names them), so that what
    they import is loaded before the first probe, not on the event loop during it."""
    for kind in set(kinds):
        # a protocol that cannot load is reported by its targets' probes, as unprepared
        with contextlib.suppress(Exception):
            protocol_for(kind)


@cache
def provider_options() -> dict[str, ProviderOption]:
    """Every provider option any protocol declares, by config key (the config's provider
    model is built from these). Two protocols may share a key only with one meaning."""
    found: dict[str, ProviderOption] = {}
    for kind in kinds():
        for opt in protocol_class(kind).provider_options:
            seen = found.setdefault(opt.key, opt)
            if seen != opt:
                raise TypeError(f"provider option {opt.key!r} is declared twice with different meanings")
    return found
