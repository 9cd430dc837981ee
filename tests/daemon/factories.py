"""Shared helpers for the daemon tests."""

from __future__ import annotations

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
    return r.json()  # type: ignore[no-any-return]


