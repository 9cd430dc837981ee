"""Slack via slack-sdk: a bot token + channel (Block Kit; updates and the resolve go in
the thread of the incident's first message), or an incoming webhook."""

from __future__ import annotations

from typing import Any

from alerts.model import Notification
from alerts.notifiers.base import DeliveryError, Notifier, ReceiverConfig
from core.durations import Duration
from core.http_retry import HttpFailure, classify
from core.redact import SECRETS
from core.secrets import read_secret


def blocks(n: Notification) -> list[dict[str, Any]]:
    emoji = ":white_check_mark:" if n.status == "resolved" else ":rotating_light:"
    body = "\n".join(f"• {line}" for line in (n.lines() or [n.text()]))[:2900]
    return [
        {"type": "header", "text": {"type": "plain_text", "text": f"{n.title()}"[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{emoji} {body}"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "llm-vitals"}]},
    ]


MAX_THREADS = 1000  # open incident threads remembered (oldest forgotten first)


class SlackReceiver(ReceiverConfig):
    secrets = ("token", "webhook_url")

    token_env: str | None = None
    token_file: str | None = None
    channel: str | None = None
    webhook_url_env: str | None = None
    webhook_url_file: str | None = None
    api_url: str = "https://slack.com/api/"
    timeout: Duration = 10

    def secret_urls(self) -> list[str]:
        return [self.api_url]


class SlackNotifier(Notifier):
    kind = "slack"
    config = SlackReceiver

    def __init__(self, name: str, cfg: Any) -> None:
        super().__init__(name, cfg)
        self.threads: dict[str, str] = {}  # incident thread key → ts of its first message

    def state(self) -> dict[str, Any] | None:
        # Persisted with the alert state: after a restart the updates and the resolve of an
        # incident that started before it still go in the incident's thread.
        return {"threads": dict(self.threads)} if self.threads else None

    def restore(self, state: dict[str, Any]) -> None:
        threads = state.get("threads") or {}
        self.threads.update({str(k): str(v) for k, v in threads.items()})
        self._trim()

    def _trim(self) -> None:
        while len(self.threads) > MAX_THREADS:
            del self.threads[next(iter(self.threads))]

    def validate(self) -> None:
        c = self.cfg
        token = read_secret(c.token_env, c.token_file, f"receivers.{self.name}.slack.token")
        hook = read_secret(c.webhook_url_env, c.webhook_url_file, f"receivers.{self.name}.slack.webhook_url")
        if not token and not hook:
            raise ValueError(f"receivers.{self.name}.slack: needs token_env/token_file + channel, or webhook_url_env")
        if token and not c.channel:
            raise ValueError(f"receivers.{self.name}.slack: a bot token needs `channel`")

    async def send(self, n: Notification) -> None:
        # here, not at the top: slack-sdk's clients (and aiohttp) take ~0.5 s to import, which
        # loading the config (`llm-vitals check` reads this module's SlackReceiver) would pay
        from slack_sdk.errors import SlackApiError
        from slack_sdk.web.async_client import AsyncWebClient
        from slack_sdk.webhook.async_client import AsyncWebhookClient

        c = self.cfg
        token = read_secret(c.token_env, c.token_file, "slack.token")
        try:
            if token:
                client = AsyncWebClient(token=token.get(), base_url=c.api_url, timeout=int(c.timeout))
                thread = self.threads.get(n.thread_key) if n.thread_key else None
                resp = await client.chat_postMessage(channel=c.channel, text=n.title() + "\n" + n.text(),
                                                     blocks=blocks(n), thread_ts=thread)
                if n.thread_key and thread is None and resp.get("ts") and not n.final:
                    self.threads[n.thread_key] = str(resp["ts"])
                    self._trim()
                if n.final and n.thread_key:  # the incident is over (a partial resolve keeps the thread)
                    self.threads.pop(n.thread_key, None)
                return
            hook = read_secret(c.webhook_url_env, c.webhook_url_file, "slack.webhook_url")
            assert hook is not None
            wresp = await AsyncWebhookClient(hook.get(), timeout=int(c.timeout)).send(text=n.title(), blocks=blocks(n))
            failure = classify(wresp.status_code, wresp.headers)
            if failure is not None and failure.retry:
                raise DeliveryError(f"Slack webhook HTTP {wresp.status_code}", failure.retry_after)
            if failure is not None:
                raise DeliveryError(f"Slack webhook HTTP {wresp.status_code}: {SECRETS.clip(str(wresp.body), 100)}", permanent=True)
        except SlackApiError as exc:
            status = exc.response.status_code
            failure = classify(status, exc.response.headers) or HttpFailure(status, False, None)
            err = exc.response.get("error") if hasattr(exc.response, "get") else None
            raise DeliveryError(f"Slack API {status}: {err}", failure.retry_after,
                                permanent=not failure.retry) from None
        except DeliveryError:
            raise
        except Exception as exc:  # connection errors from aiohttp
            raise DeliveryError(f"Slack: {type(exc).__name__}: {SECRETS.clip(str(exc), 150)}") from None
