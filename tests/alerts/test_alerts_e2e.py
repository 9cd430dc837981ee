"""End to end: a simulator degradation → the daemon → Slack and email page → recovery →
resolved in the same Slack thread and by email, and no other message."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aiosmtpd.controller import Controller

from tests.conftest import free_port

SCENARIO = """
defaults: {ttft: 50ms, itl: 5ms, jitter: 0, tokens: 4}
schedule:
  - {at: 4s, duration: 5s, models: flaky, fault: {kind: http_503}}
"""

CONFIG = """
http: {listen: "127.0.0.1:{port}"}
storage: {path: "{tmp}/state.db"}
simulator: {enabled: true, scenario: "{tmp}/scenario.yaml"}
defaults: {interval: 1s, timeout: 5s, jitter: 0, probe: short}
detector: {enabled: false}
providers:
  - {name: sim, kind: openai_compatible, base_url: "{simulator}/v1", models: [flaky, fine]}
alerts:
  evaluation_interval: 1s
  rules:
    - {name: target-down, kind: consecutive_failures, count: 2, resolve_after: 2, labels: {severity: page}}
  receivers:
    - {name: oncall-slack, slack: {token_env: E2E_SLACK_TOKEN, channel: "#llm-oncall", api_url: "SLACK_URL"}}
    - {name: oncall-mail, email: {host: 127.0.0.1, port: SMTP_PORT, starttls: false, from: canary@example.com, to: [oncall@example.com]}}
  route:
    receiver: oncall-slack
    group_by: [provider]
    group_wait: 0s
    group_interval: 1s
    routes:
      - {match: {severity: page}, receiver: oncall-slack, continue: true}
      - {match: {severity: page}, receiver: oncall-mail}
"""


class SlackAPI(BaseHTTPRequestHandler):
    posts: list[dict] = []  # type: ignore[type-arg]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        SlackAPI.posts.append(json.loads(body))
        out = json.dumps({"ok": True, "ts": f"1700.{len(SlackAPI.posts)}"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: object) -> None:
        pass


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[str] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.messages.append(envelope.content.decode())
        return "250 OK"


def test_degradation_pages_once_and_resolves(daemon_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "scenario.yaml").write_text(SCENARIO)
    SlackAPI.posts = []
    slack = ThreadingHTTPServer(("127.0.0.1", 0), SlackAPI)
    threading.Thread(target=slack.serve_forever, daemon=True).start()
    mailbox = Mailbox()
    smtp_port = free_port()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    try:
        cfg = CONFIG.replace("SLACK_URL", f"http://127.0.0.1:{slack.server_address[1]}/api/").replace(
            "SMTP_PORT", str(smtp_port))
        d = daemon_factory(cfg, env={"E2E_SLACK_TOKEN": "xoxb-e2e-token"})
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and not (len(SlackAPI.posts) >= 2 and len(mailbox.messages) >= 2):
            time.sleep(0.3)
        time.sleep(3)  # anything else that would arrive (a second page, a flap) arrives now
        logs = d.logs()
        assert d.stop() == 0
    finally:
        slack.shutdown()
        smtp.stop()
    texts = [p["text"] for p in SlackAPI.posts]
    assert len(SlackAPI.posts) == 2, (texts, logs[-3000:])
    first, second = SlackAPI.posts
    assert "FIRING" in first["text"] and "sim/flaky/short" in first["text"] and "HTTP 503" in first["text"]
    assert first["channel"] == "#llm-oncall"
    assert "RESOLVED" in second["text"] and second.get("thread_ts") == "1700.1"
    assert "fine" not in " ".join(texts)
    assert len(mailbox.messages) == 2
    assert "FIRING" in mailbox.messages[0] and "RESOLVED" in mailbox.messages[1]
    assert "xoxb-e2e-token" not in logs
