"""Alertmanager: POST /api/v2/alerts to every configured instance (its cluster dedups),
re-sent while firing so Alertmanager doesn't time the alert out; endsAt on resolve."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from pydantic import Field

from alerts.model import Notification
from alerts.notifiers.base import DeliveryError, Notifier, ReceiverConfig
from alerts.notifiers.webhook import post_json
from core.durations import Duration
from core.redact import strip_userinfo


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


class AlertmanagerReceiver(ReceiverConfig):
    urls: list[str] = Field(min_length=1)
    timeout: Duration = 10
    resend_interval: Duration = 60

    def secret_urls(self) -> list[str]:
        return list(self.urls)


class AlertmanagerNotifier(Notifier):
    kind = "alertmanager"
    config = AlertmanagerReceiver
    resends_while_firing = True

    @property
    def resend_interval(self) -> float:
        return float(self.cfg.resend_interval)

    async def send(self, n: Notification) -> None:
        alerts = []
        for e in n.events:
            a = e.alert
            item = {
                "labels": {"alertname": a.rule, **a.labels, **({"test": "true"} if n.test else {})},
                "annotations": {"summary": a.summary, **({"reason": a.reason} if a.reason else {}),
                                **({"runbook_url": a.runbook_url} if a.runbook_url else {})},
                "startsAt": _iso(a.firing_since or e.at),
            }
            if e.kind == "resolved":
                item["endsAt"] = _iso(e.at)
            else:  # expires by itself if we stop re-sending (daemon gone)
                item["endsAt"] = (datetime.fromtimestamp(e.at, UTC) + timedelta(seconds=self.cfg.resend_interval * 4)
                                  ).isoformat().replace("+00:00", "Z")
            alerts.append(item)
        body = json.dumps(alerts).encode()

        async def post(url: str) -> str | None:
            try:
                await post_json(url.rstrip("/") + "/api/v2/alerts", body, {}, self.cfg.timeout)
            except DeliveryError as exc:
                return f"{strip_userinfo(url)}: {exc}"
            return None

        # side by side: a hanging instance must not hold back (or, past the engine's send
        # timeout, starve) the others
        errors = [e for e in await asyncio.gather(*(post(u) for u in self.cfg.urls)) if e is not None]
        if len(errors) == len(self.cfg.urls):
            raise DeliveryError("; ".join(errors))
