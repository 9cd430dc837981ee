"""Azure OpenAI Chat Completions (docs/wire-formats.md §3): deployment URL + api-version, or the
v1 route; `api-key` header; prompt-filter and annotation chunks are not tokens."""

from __future__ import annotations

from typing import Any, ClassVar

from probes.protocol import ProviderOption
from probes.protocols.openai_chat import OpenAIChat
from probes.target import ProbeTarget

DEFAULT_API_VERSION = "2024-10-21"


class AzureOpenAIChat(OpenAIChat):
    kind = "azure_openai"
    provider_options: ClassVar[tuple[ProviderOption, ...]] = (
        *OpenAIChat.provider_options,
        ProviderOption("api_version", f"api-version of the deployment route (default {DEFAULT_API_VERSION}; "
                                      "unused on the /openai/v1 route)"),
    )

    def _v1(self, target: ProbeTarget) -> bool:
        return target.provider.base_url.endswith("/openai/v1")

    def url(self, target: ProbeTarget) -> str:
        base = target.provider.base_url
        if self._v1(target):
            return f"{base}/chat/completions"
        version = target.provider.options.get("api_version") or DEFAULT_API_VERSION
        return f"{base}/openai/deployments/{target.model}/chat/completions?api-version={version}"

    def auth_headers(self, target: ProbeTarget) -> dict[str, str]:
        key = target.provider.api_key
        return {"api-key": key.get()} if key else {}

    def body(self, target: ProbeTarget, prompt: str) -> dict[str, Any]:
        body = super().body(target, prompt)
        if not self._v1(target):
            body.pop("model", None)  # the deployment in the path picks the model
        return body
