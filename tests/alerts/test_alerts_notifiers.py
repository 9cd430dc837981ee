"""Notifiers against real peers: an SMTP server (plain, STARTTLS + auth), slack-sdk to a
local HTTP endpoint, a real Alertmanager delivering to a local webhook, and a webhook
with an HMAC signature and a 429 Retry-After."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import subprocess
import time
from pathlib import Path

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from alerts.notifiers import DeliveryError
from alerts.notifiers.alertmanager import AlertmanagerNotifier, AlertmanagerReceiver
from alerts.notifiers.email import EmailNotifier, EmailReceiver
from alerts.notifiers.slack import SlackNotifier, SlackReceiver
from alerts.notifiers.webhook import SIGNATURE_HEADER, WebhookNotifier, WebhookReceiver
from tests.alerts.factories import note, serve
from tests.conftest import free_port, wait_http
from tests.servers import need


class Sink:
    def __init__(self) -> None:
        self.messages: list = []  # type: ignore[type-arg]

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.messages.append(envelope)
        return "250 OK"


def authenticator(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
    ok = auth_data.login == b"canary" and auth_data.password == b"s3cret-mail"
    return AuthResult(success=ok)


async def test_email_plain_and_starttls_with_auth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = Sink()
    port = free_port()
    plain = Controller(sink, hostname="127.0.0.1", port=port)
    plain.start()
    try:
        n = EmailNotifier("mail", EmailReceiver(host="127.0.0.1", port=port, starttls=False, **{"from": "c@x"}, to=["oncall@x"]))
        await n.send(note())
        msg = sink.messages[-1]
        body = msg.content.decode()
        assert "target-down" in body and "openai/gpt-x/short" in body and "HTTP 503" in body
        assert "text/plain" in body and "text/html" in body
    finally:
        plain.stop()
    # STARTTLS + auth with a self-signed certificate
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    import ssl

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    port = free_port()
    tls = Controller(sink, hostname="127.0.0.1", port=port, tls_context=ctx, require_starttls=True,
                     authenticator=authenticator, auth_require_tls=True)
    tls.start()
    monkeypatch.setenv("MAIL_USER", "canary")
    monkeypatch.setenv("MAIL_PW", "s3cret-mail")
    try:
        cfg = EmailReceiver(host="127.0.0.1", port=port, starttls=True, username_env="MAIL_USER", password_env="MAIL_PW",
                            ca_file=str(cert), **{"from": "c@x"}, to=["oncall@x"])
        await EmailNotifier("mail", cfg).send(note("resolved"))
        assert "RESOLVED" in sink.messages[-1].content.decode()
        monkeypatch.setenv("MAIL_PW", "wrong-pw")
        with pytest.raises(DeliveryError) as err:
            await EmailNotifier("mail", cfg.model_copy(update={"timeout": 3})).send(note())
        assert "wrong-pw" not in str(err.value) and "canary" not in str(err.value)
    finally:
        tls.stop()




async def test_slack_bot_token_threads_updates_and_resolve(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[dict, str]] = []  # type: ignore[type-arg]

    async def handler(request: web.Request) -> web.Response:
        body = await request.json() if request.content_type == "application/json" else dict(await request.post())
        calls.append((body, request.headers.get("Authorization", "")))
        return web.json_response({"ok": True, "ts": f"17000.{len(calls)}", "channel": "C1"})

    runner, url = await serve(handler)
    monkeypatch.setenv("SLACK_TEST_TOKEN", "xoxb-test-123")
    try:
        n = SlackNotifier("slack", SlackReceiver(token_env="SLACK_TEST_TOKEN", channel="#oncall", api_url=url + "/api/"))
        await n.send(note("firing", "inc-1"))
        await n.send(note("resolved", "inc-1"))
    finally:
        await runner.cleanup()
    (first, auth1), (second, _) = calls
    assert auth1 == "Bearer xoxb-test-123"
    assert first["channel"] == "#oncall" and first.get("thread_ts") is None
    assert first["blocks"][0]["type"] == "header" and "FIRING" in first["blocks"][0]["text"]["text"]
    assert second["thread_ts"] == "17000.1" and "RESOLVED" in second["text"]


async def test_slack_rate_limit_is_retryable_with_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": "7"})

    runner, url = await serve(handler)
    monkeypatch.setenv("SLACK_TEST_TOKEN", "xoxb-test-123")
    try:
        n = SlackNotifier("slack", SlackReceiver(token_env="SLACK_TEST_TOKEN", channel="#c", api_url=url + "/api/"))
        with pytest.raises(DeliveryError) as err:
            await n.send(note())
    finally:
        await runner.cleanup()
    assert err.value.retry_after == 7 and not err.value.permanent
    assert "xoxb" not in str(err.value)


async def test_webhook_hmac_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    got: list[tuple[bytes, str]] = []

    async def handler(request: web.Request) -> web.Response:
        got.append((await request.read(), request.headers.get(SIGNATURE_HEADER, "")))
        return web.json_response({})

    runner, url = await serve(handler)
    monkeypatch.setenv("HOOK_TEST_SECRET", "hmac-key")
    try:
        await WebhookNotifier("hook", WebhookReceiver(url=url + "/hook", hmac_secret_env="HOOK_TEST_SECRET")).send(note())
    finally:
        await runner.cleanup()
    body, sig = got[0]
    assert sig == "sha256=" + hmac.new(b"hmac-key", body, hashlib.sha256).hexdigest()
    payload = json.loads(body)
    assert payload["status"] == "firing" and payload["alerts"][0]["rule"] == "target-down"


async def test_real_alertmanager_delivers_pushed_alert_to_a_webhook(tmp_path: Path) -> None:
    binary = need("prometheus-alertmanager")
    received: list[dict] = []  # type: ignore[type-arg]

    async def handler(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.json_response({})

    runner, hook = await serve(handler)
    port = free_port()
    cfg = tmp_path / "am.yml"
    cfg.write_text(f"route: {{receiver: hook, group_wait: 1s, group_interval: 1s, repeat_interval: 1h, group_by: [alertname]}}\n"
                   f"receivers:\n  - name: hook\n    webhook_configs: [{{url: '{hook}/am', send_resolved: true}}]\n")
    proc = subprocess.Popen([binary, f"--config.file={cfg}", f"--storage.path={tmp_path / 'am'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await asyncio.to_thread(wait_http, f"http://127.0.0.1:{port}/-/ready", 30, (200,), proc)
        am = AlertmanagerNotifier("am", AlertmanagerReceiver(urls=[f"http://127.0.0.1:{port}"]))
        await am.send(note())
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not received:
            await asyncio.sleep(0.2)
        assert received and received[0]["status"] == "firing"
        alert = received[0]["alerts"][0]
        assert alert["labels"]["alertname"] == "target-down" and alert["labels"]["provider"] == "openai"
        await am.send(note("resolved"))
        while time.monotonic() < deadline + 10 and not any(r["status"] == "resolved" for r in received):
            await asyncio.sleep(0.2)
        assert any(r["status"] == "resolved" for r in received)
    finally:
        proc.terminate()
        proc.wait(10)
        await runner.cleanup()
