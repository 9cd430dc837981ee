"""Secrets never leak (issue 13, item 8): a provider that echoes the credentials it got
(Basic auth from a `user:password@` base_url; a bearer key placed so the 200-character
error cut falls inside it) into its error body. The daemon runs as a subprocess; the
secret must appear in none of: the log, the SQLite files, /api/v1/status, the page,
/api/v1/alerts, and what a webhook receiver gets."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from core.redact import clip, redact, strip_userinfo, url_secrets

URL_USER, URL_PASS = "probeuser", "URLPASS-s3cr3t-9f8e7d"
KEY = "sk-live-0123456789abcdefghijKLMN"


class Echo(BaseHTTPRequestHandler):
    hooks: list[bytes] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/hook":
            Echo.hooks.append(body)
            self._reply(200, b"{}")
            return
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            decoded = base64.b64decode(auth[6:]).decode()
            msg = f"bad credentials {auth} ({decoded}) for {self.path}"
        else:
            # the key starts at character 186: the 200-character cut falls inside it
            msg = "A" * 185 + " " + auth.removeprefix("Bearer ")
        self._reply(401, json.dumps({"error": {"message": msg, "type": "invalid_request_error"}}).encode())

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def echo() -> Iterator[int]:
    Echo.hooks = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()


def forms() -> list[str]:
    """Every form a leak could take, down to a prefix long enough to matter."""
    basic = base64.b64encode(f"{URL_USER}:{URL_PASS}".encode()).decode()
    return [URL_PASS, basic, basic[:12], KEY, KEY[:12], KEY[8:20]]


def test_echoed_credentials_appear_nowhere(daemon_factory, echo: int, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    key = tmp_path / "key"
    key.write_text(KEY + "\n")
    d = daemon_factory(f"""
region: test-1
http: {{listen: "127.0.0.1:{{port}}"}}
storage: {{path: "{{tmp}}/state.db", retention: 1d}}
defaults: {{interval: 500ms, timeout: 5s, jitter: 0%, probe: short}}
alerts:
  evaluation_interval: 1s
  receivers: [{{name: hook, webhook: {{url: "http://127.0.0.1:{echo}/hook"}}}}]
  route: {{receiver: hook, group_wait: 0s}}
providers:
  - name: urlcreds
    kind: openai_compatible
    base_url: "http://{URL_USER}:{URL_PASS}@127.0.0.1:{echo}/v1"
    models: [m1]
  - name: cutkey
    kind: openai_compatible
    base_url: "http://127.0.0.1:{echo}/v1"
    api_key_file: {key}
    models: [m2]
""")
    d.wait_ready()
    deadline = time.monotonic() + 30
    alerts: dict = {}  # type: ignore[type-arg]
    while time.monotonic() < deadline:
        alerts = httpx.get(d.url + "/api/v1/alerts").json()
        if len({a["labels"].get("provider") for a in alerts["alerts"] if a["state"] == "firing"}) == 2 and Echo.hooks:
            break
        time.sleep(0.5)
    assert len(alerts["alerts"]) >= 2, alerts
    status = httpx.get(d.url + "/api/v1/status").text
    page = httpx.get(d.url + "/").text
    errors = {t["target"]: t["last"]["error"] for t in json.loads(status)["targets"]}
    # the echo was seen (masked), so the test exercised it
    assert "bad credentials Basic ***" in errors["urlcreds/m1/short"], errors
    assert errors["cutkey/m2/short"].endswith("A ***"), errors
    assert d.stop() == 0
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*"))
    places = {"log": d.logs(), "sqlite": stored.decode("utf-8", "replace"), "status": status, "page": page,
              "alerts": json.dumps(alerts), "webhook": b"".join(Echo.hooks).decode()}
    assert Echo.hooks, "no notification was sent"
    for where, text in places.items():
        for secret in forms():
            assert secret not in text, f"{secret!r} leaked into the {where}"


def test_redaction_comes_before_the_cut() -> None:
    text = "error: " + "x" * 190 + KEY
    assert KEY[:5] not in clip(text, 200, [KEY])
    assert redact(text[:200], [KEY]).endswith("x***")  # cut first elsewhere: the tail goes too
    assert redact("nothing here", [KEY]) == "nothing here"


def test_url_credentials_are_secrets_and_never_shown() -> None:
    url = "https://us%40er:p%2Fss-w0rd@proxy.example:8443/v1"
    s = url_secrets(url)
    assert "p/ss-w0rd" in s and "p%2Fss-w0rd" in s
    assert base64.b64encode(b"us@er:p/ss-w0rd").decode() in s
    assert strip_userinfo(url) == "https://***@proxy.example:8443/v1"
    assert url_secrets("https://proxy.example/v1") == []
