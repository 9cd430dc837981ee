"""Shared helpers for the daemon tests."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.conftest import DaemonProcess

CONFIG = """
region: test-1
http: {listen: "127.0.0.1:{port}"}
storage: {path: "{tmp}/state.db", retention: 1d}
simulator: {enabled: true}
defaults: {interval: 1s, timeout: 10s, jitter: 10%, probe: short}
alerts: {enabled: false}
providers:
  - name: sim-openai
    kind: openai_compatible
    base_url: "{simulator}/v1"
    models: [fast-a, fast-b]
  - name: sim-anthropic
    kind: anthropic
    base_url: "{simulator}/v1"
    models: [claude-x]
"""


def status(d: DaemonProcess, token: str | None = None) -> dict:  # type: ignore[type-arg]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = httpx.get(d.url + "/api/v1/status", headers=headers, timeout=5)
    assert r.status_code == 200, r.text
    return strict_json(r.text)  # type: ignore[no-any-return]


def strict_json(text: str) -> Any:
    """JSON as a browser's JSON.parse reads it: NaN and Infinity are errors, not numbers."""
    def refuse(word: str) -> None:
        raise ValueError(f"not JSON: {word}")
    return json.loads(text, parse_constant=refuse)


