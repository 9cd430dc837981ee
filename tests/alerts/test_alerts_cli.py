"""`llm-vitals alert-test` and `llm-vitals silence add|list|expire`, the HTTP route
functions, and delivery through the engine against a real local webhook (429 with
Retry-After, then success; a dead receiver counted, never blocking evaluation)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from alerts import http_routes
from alerts.engine import AlertEngine
from core.aggregator import Aggregator
from core.result import Outcome
from core.store import Store
from daemon.cli import main
from daemon.metrics import Metrics
from tests.alerts.factories import Clock
from tests.factories import result

SECRET = "hmac-s3cret-value"


class Hook(BaseHTTPRequestHandler):
    statuses: list[int] = []  # answered in order; 200 once exhausted
    received: list[tuple[dict, dict]] = []  # type: ignore[type-arg]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Hook.received.append((json.loads(body), dict(self.headers)))
        status = Hook.statuses.pop(0) if Hook.statuses else 200
        self.send_response(status)
        if status == 429:
            self.send_header("Retry-After", "1")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[str]:
    Hook.statuses, Hook.received = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def write_config(tmp_path: Path, hook_url: str) -> Path:
    cfg = tmp_path / "canary.yaml"
    cfg.write_text(f"""
storage: {{path: "{tmp_path}/state.db"}}
alerts:
  rules:
    - {{name: down, kind: consecutive_failures, count: 2, labels: {{severity: page}}}}
  receivers:
    - {{name: hook, webhook: {{url: "{hook_url}", hmac_secret_env: CLI_HOOK_SECRET}}}}
    - {{name: dead, webhook: {{url: "http://127.0.0.1:9/nothing", timeout: 2s}}}}
  route: {{receiver: hook, group_wait: 0s}}
""")
    return cfg


def test_alert_test_command(tmp_path: Path, hook: str, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CLI_HOOK_SECRET", SECRET)
    cfg = str(write_config(tmp_path, hook))
    assert main(["alert-test", "hook", "-c", cfg]) == 0
    body, headers = Hook.received[-1]
    assert body["test"] is True and "X-LLM-Vitals-Signature" in headers
    assert main(["alert-test", "nobody", "-c", cfg]) == 2
    Hook.statuses = [500]
    assert main(["alert-test", "hook", "-c", cfg]) == 1
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err
    (tmp_path / "broken.yaml").write_text("alerts: {rules: [{name: x, kind: threshold}]}\n")
    assert main(["alert-test", "hook", "-c", str(tmp_path / "broken.yaml")]) == 2
    assert "threshold rule needs" in capsys.readouterr().err


async def test_silence_commands_reach_a_running_engine(tmp_path: Path, hook: str,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CLI_HOOK_SECRET", SECRET)
    cfg = str(write_config(tmp_path, hook))
    from daemon.config import load_settings

    settings = load_settings(cfg)
    store = Store(settings.storage.path)  # the daemon's own connection to the same file
    engine = AlertEngine(settings.alerts, store=store, stats=Aggregator(), metrics=Metrics())
    assert main(["silence", "add", "-c", cfg, "--match", "provider=p", "--duration", "2h",
                 "--comment", "provider incident"]) == 0
    sid = capsys.readouterr().out.strip()
    assert main(["silence", "list", "-c", cfg]) == 0
    listed = capsys.readouterr().out
    assert sid in listed and "provider=p" in listed and "provider incident" in listed
    assert [s["id"] for s in engine.silences()] == [sid]
    await engine.start()
    try:
        for _ in range(3):
            engine.observe(result(0.3, outcome=Outcome.HTTP_ERROR))
            await engine.evaluate()
        await asyncio.sleep(0.3)
        assert Hook.received == []  # silenced by the CLI while the engine runs
    finally:
        await engine.stop(1)
    # (the ID before the options: see test_alerts_defects for the README's order)
    assert main(["silence", "expire", sid, "-c", cfg]) == 0
    assert main(["silence", "expire", sid, "-c", cfg]) == 1
    assert main(["silence", "add", "-c", cfg, "--match", "nolabel"]) == 2
    assert main(["silence", "add", "-c", cfg, "--match", "a=b", "--duration", "soon"]) == 2
    assert engine.silences() == []


async def test_http_routes(tmp_path: Path, hook: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLI_HOOK_SECRET", SECRET)
    from daemon.config import load_settings

    settings = load_settings(write_config(tmp_path, hook))
    engine = AlertEngine(settings.alerts, store=Store(tmp_path / "r.db"), stats=Aggregator())
    assert http_routes.silences_post(engine, {"match": {}})[0] == 400
    assert http_routes.silences_post(engine, [{"match": {"provider": "p"}}])[0] == 400  # not an object
    assert http_routes.silences_post(engine, {"match": {"provider": 3}})[0] == 400
    assert http_routes.silences_post(engine, {"match": {"provider": "p"}, "duration": "later"})[0] == 400
    status, body = http_routes.silences_post(engine, {"match": {"provider": "p"}, "duration": "30m", "comment": "x"})
    assert status == 201
    status, listed = http_routes.silences_get(engine)
    assert status == 200 and [s["id"] for s in listed["silences"]] == [body["id"]]
    assert http_routes.silence_delete(engine, body["id"])[0] == 200
    assert http_routes.silence_delete(engine, body["id"])[0] == 404
    assert http_routes.alerts_get(engine) == (200, {"alerts": []})
    assert (await http_routes.alert_test(engine, "nobody"))[0] == 404
    status, out = await http_routes.alert_test(engine, "hook")
    assert status == 200 and Hook.received
    status, out = await http_routes.alert_test(engine, "dead")
    assert status == 502 and SECRET not in json.dumps(out)


async def test_delivery_retries_after_429_and_a_dead_receiver_never_blocks(tmp_path: Path, hook: str,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLI_HOOK_SECRET", SECRET)
    from daemon.config import load_settings

    settings = load_settings(write_config(tmp_path, hook))
    alerts = settings.alerts.model_copy(update={"route": settings.alerts.route.model_copy(  # type: ignore[union-attr]
        update={"routes": [settings.alerts.route.model_copy(update={"receiver": "dead", "continue_": True}),  # type: ignore[union-attr]
                           settings.alerts.route.model_copy(update={"receiver": "hook"})]})})  # type: ignore[union-attr]
    clock = Clock()
    metrics = Metrics()
    engine = AlertEngine(alerts, store=Store(tmp_path / "d.db"), stats=Aggregator(clock), metrics=metrics, clock=clock)
    Hook.statuses = [429]
    await engine.start()
    try:
        for _ in range(3):
            clock.t += 15
            engine.observe(result(0.3, outcome=Outcome.HTTP_ERROR))
            t0 = time.monotonic()
            await engine.evaluate()
            assert time.monotonic() - t0 < 0.5  # evaluation hands off, never waits for a receiver
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(Hook.received) < 2:
            await asyncio.sleep(0.1)
    finally:
        await engine.stop(0.5)
    assert len(Hook.received) == 2  # the 429, then the retry honouring Retry-After: 1
    assert Hook.received[0][0] == Hook.received[1][0] and Hook.received[1][0]["status"] == "firing"

    def count(receiver: str, outcome: str) -> float:
        return metrics.registry.get_sample_value("llm_vitals_notifications_total",
                                                 {"receiver": receiver, "outcome": outcome}) or 0.0

    assert count("hook", "retried") == 1 and count("hook", "sent") == 1
    assert count("dead", "retried") >= 1
