"""Generic webhook: the notification as JSON, optionally signed (HMAC-SHA256)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import TYPE_CHECKING, Any

from alerts.model import Notification
from alerts.notifiers.base import DeliveryError, Notifier, ReceiverConfig
from core.durations import Duration
from core.http_retry import classify
from core.redact import SECRETS
from core.secrets import read_secret

if TYPE_CHECKING:
    import httpx

SIGNATURE_HEADER = "X-LLM-Vitals-Signature"


def payload(n: Notification) -> dict[str, Any]:
    return {
        "status": n.status,
        "receiver": n.receiver,
        "group": n.group,
        "title": n.title(),
        "text": n.text(),
        "test": n.test,
        "alerts": [
            {"kind": e.kind, "rule": e.alert.rule, "labels": e.alert.labels, "state": e.alert.state,
             "summary": e.alert.summary, "reason": e.alert.reason, "value": e.alert.value,
             "firing_since": e.alert.firing_since, "at": e.at, "duration": e.duration,
             "runbook_url": e.alert.runbook_url}
            for e in n.events
        ],
    }


async def post_json(url: str, body: bytes, headers: dict[str, str], timeout: float) -> httpx.Response:
    import httpx  # here, not at the top: loading the config (which reads this module) stays light

    try:
        async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
            resp = await client.post(url, content=body, headers={"content-type": "application/json", **headers})
    except httpx.HTTPError as exc:
        raise DeliveryError(SECRETS.clip(f"{type(exc).__name__}: {exc}", 200)) from None
    failure = classify(resp.status_code, resp.headers)
    if failure is None:
        return resp
    if failure.retry:
        raise DeliveryError(f"HTTP {resp.status_code}", failure.retry_after)
    raise DeliveryError(f"HTTP {resp.status_code}: {SECRETS.clip(resp.text, 200)}", permanent=True)


class WebhookReceiver(ReceiverConfig):
    secrets = ("hmac_secret",)

    url: str
    hmac_secret_env: str | None = None
    hmac_secret_file: str | None = None
    headers: dict[str, str] = {}
    timeout: Duration = 10

    def secret_urls(self) -> list[str]:
        return [self.url]


class WebhookNotifier(Notifier):
    kind = "webhook"
    config = WebhookReceiver

    def validate(self) -> None:
        read_secret(self.cfg.hmac_secret_env, self.cfg.hmac_secret_file, f"receivers.{self.name}.webhook.hmac_secret")

    async def send(self, n: Notification) -> None:
        body = json.dumps(payload(n), default=str).encode()
        headers = dict(self.cfg.headers)
        secret = read_secret(self.cfg.hmac_secret_env, self.cfg.hmac_secret_file, "hmac_secret")
        if secret:
            sig = hmac.new(secret.get().encode(), body, hashlib.sha256).hexdigest()
            headers[SIGNATURE_HEADER] = f"sha256={sig}"
        await post_json(self.cfg.url, body, headers, self.cfg.timeout)
