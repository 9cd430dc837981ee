"""Delivery through the engine's own workers against real peers: a hanging SMTP server
(aiosmtpd) and a dead webhook never delay Slack (slack-sdk against a local HTTP endpoint);
failures are logged, counted and retried; a full receiver queue drops its oldest message;
Slack threads survive a restart."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp import web
from aiosmtpd.controller import Controller

from alerts.config import AlertsConfig
from alerts.engine import AlertEngine
from alerts.model import Alert, Event, Notification
from alerts.persistence import STATE_KEY
from core.aggregator import Aggregator
from core.result import Outcome
from core.store import Store
from daemon.metrics import Metrics
from tests.alerts.factories import Clock, serve
from tests.conftest import free_port
from tests.factories import result

SLACK_TOKEN = "xoxb-delivery-test-token"


class HangingSMTP:
    """Accepts the connection and the envelope, then never answers DATA."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(30)
        return "250 OK"


class SlackAPI:
    def __init__(self) -> None:
        self.posts: list[tuple[float, dict[str, Any]]] = []

    async def handler(self, request: web.Request) -> web.Response:
        body = await request.json() if request.content_type == "application/json" else dict(await request.post())
        self.posts.append((time.monotonic(), body))
        return web.json_response({"ok": True, "ts": f"1700.{len(self.posts)}", "channel": "C1"})


def count(metrics: Metrics, receiver: str, outcome: str) -> float:
    return metrics.registry.get_sample_value("llm_vitals_notifications_total",
                                             {"receiver": receiver, "outcome": outcome}) or 0.0


def alerts_config(slack_url: str, smtp_port: int = 0, dead_url: str = "") -> AlertsConfig:
    receivers: list[dict[str, Any]] = [
        {"name": "slack", "slack": {"token_env": "DELIVERY_SLACK_TOKEN", "channel": "#oncall", "api_url": slack_url}}]
    routes: list[dict[str, Any]] = []
    if smtp_port:
        receivers.append({"name": "mail", "email": {"host": "127.0.0.1", "port": smtp_port, "starttls": False,
                                                    "timeout": "2s", "from": "c@x", "to": ["oncall@x"]}})
        routes.append({"match": {"severity": "page"}, "receiver": "mail", "continue": True})
    if dead_url:
        receivers.append({"name": "dead", "webhook": {"url": dead_url}})
        routes.append({"match": {"severity": "page"}, "receiver": "dead", "continue": True})
    routes.append({"match": {"severity": "page"}, "receiver": "slack"})  # last: queued behind the others
    return AlertsConfig(
        rules=[{"name": "down", "kind": "consecutive_failures", "count": 2, "resolve_after": 2,
                "labels": {"severity": "page"}}],
        receivers=receivers,
        route={"receiver": "slack", "group_by": ["provider"], "group_wait": 0, "group_interval": 1, "routes": routes})


async def test_hanging_smtp_and_dead_webhook_never_delay_slack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELIVERY_SLACK_TOKEN", SLACK_TOKEN)
    slack = SlackAPI()
    runner, url = await serve(slack.handler)
    smtp = Controller(HangingSMTP(), hostname="127.0.0.1", port=free_port())
    smtp.start()
    clock, metrics = Clock(), Metrics()
    cfg = alerts_config(url + "/api/", smtp.port, f"http://127.0.0.1:{free_port()}/hook")
    e = AlertEngine(cfg, store=Store(":memory:"), stats=Aggregator(clock), metrics=metrics, clock=clock)
    await e.start()
    try:
        with structlog.testing.capture_logs() as logs:
            for _ in range(2):
                clock.t += 15
                e.observe(result(0.3, outcome=Outcome.HTTP_ERROR))
                t0 = time.monotonic()
                await e.evaluate()
                assert time.monotonic() - t0 < 0.5  # evaluation never waits for a receiver
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline and not (slack.posts and count(metrics, "mail", "retried")
                                                       and count(metrics, "dead", "retried")):
                await asyncio.sleep(0.05)
        assert slack.posts, "Slack got nothing"
        assert slack.posts[0][0] - t0 < 1.0  # not held behind the SMTP server's 2 s timeout
        assert "FIRING" in slack.posts[0][1]["text"]
        assert count(metrics, "slack", "sent") == 1
        assert count(metrics, "mail", "retried") >= 1 and count(metrics, "dead", "retried") >= 1
        retries = {(x["receiver"], x["event"]) for x in logs if x["event"] == "notification_retry"}
        assert retries == {("mail", "notification_retry"), ("dead", "notification_retry")}
        assert SLACK_TOKEN not in repr(logs)
    finally:
        t_stop = time.monotonic()
        await e.stop(0.2)
        assert time.monotonic() - t_stop < 2.0  # a hanging receiver does not hold up the shutdown
        smtp.stop()
        await runner.cleanup()


async def test_a_full_receiver_queue_drops_its_oldest_and_counts_it(tmp_path: Path) -> None:
    clock, metrics = Clock(), Metrics()
    cfg = alerts_config("http://127.0.0.1:9/api/")
    e = AlertEngine(cfg, store=Store(tmp_path / "s.db"), stats=Aggregator(clock), metrics=metrics, clock=clock,
                    queue_size=3)
    a = Alert("down", {"provider": "p", "severity": "page"}, state="firing", firing_since=clock.t)
    for i in range(5):
        e.delivery.send(Notification("slack", {"provider": "p"}, [Event("reminder", a, clock.t + i)], "t"))
    q = e.delivery.queues["slack"]
    assert q.qsize() == 3 and q.get_nowait()[0].events[0].at == clock.t + 2  # the newest three are kept
    assert count(metrics, "slack", "dropped") == 2
    assert metrics.registry.get_sample_value("llm_vitals_queue_depth", {"queue": "notify_slack"}) == 3


async def test_slack_thread_survives_a_restart_and_a_partial_resolve(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELIVERY_SLACK_TOKEN", SLACK_TOKEN)
    slack = SlackAPI()
    runner, url = await serve(slack.handler)
    clock = Clock()
    cfg = alerts_config(url + "/api/")

    async def run(e: AlertEngine, outcomes: dict[str, bool], posts: int) -> None:
        """Two evaluations (count 2, resolve_after 2), then wait for the Slack post."""
        for _ in range(2):
            clock.t += 15
            for model, ok in outcomes.items():
                e.observe(result(0.3, model=model, outcome=Outcome.OK if ok else Outcome.HTTP_ERROR))
            await e.evaluate()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and len(slack.posts) < posts:
            await asyncio.sleep(0.02)

    try:
        e = AlertEngine(cfg, store=Store(tmp_path / "s.db"), stats=Aggregator(clock), clock=clock)
        await e.start()
        await run(e, {"a": False, "b": False}, 1)
        assert len(slack.posts) == 1 and slack.posts[0][1].get("thread_ts") is None
        first_ts = "1700.1"
        # The thread is saved as soon as Slack answers, not only at a clean stop: the daemon
        # may be killed before its next evaluation. The second engine starts from the store
        # while the first one still runs (as after a kill -9).
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and first_ts not in json.dumps(Store(tmp_path / "s.db").get_state(STATE_KEY)):
            await asyncio.sleep(0.02)
        e2 = AlertEngine(cfg, store=Store(tmp_path / "s.db"), stats=Aggregator(clock), clock=clock)
        await e2.start()
        try:
            await run(e2, {"a": True, "b": False}, 2)  # a recovers: in the thread opened before the restart
            await run(e2, {"a": True, "b": True}, 3)  # then b: the incident's last message, still in the thread
        finally:
            await e2.stop(1)
            await e.stop(0.1)
    finally:
        await runner.cleanup()
    bodies = [b for _, b in slack.posts]
    assert [("RESOLVED" in b["text"], b.get("thread_ts")) for b in bodies[1:]] == [(True, first_ts), (True, first_ts)]
    assert "p/a/short" in bodies[1]["text"] and "p/b/short" in bodies[2]["text"]
    assert e2.notifiers["slack"].state() is None  # the incident is over: its thread is forgotten
