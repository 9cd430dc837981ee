"""The status page in a real browser, on the real daemon probing the bundled simulator: a
target degraded on schedule is `firing` on the page and in the API while its alert fires,
`silenced` once a silence is added, `ok` once it resolves; its own page and the comparison
draw their charts without a script error."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.browser import Rendered, render
from tests.conftest import REPO, DaemonProcess

DEGRADING = "sim-openai/sim-degrading/short"

# Threshold rules judge windows of at least a minute (core/aggregator.py): a resolve would
# take a minute. Failures resolve at the first good probe, so the degradation is an outage.
SCENARIO = """
defaults: {ttft: 120ms, itl: 10ms, jitter: 10%, tokens: 8}
schedule:
  - {at: 3s, duration: 35s, models: sim-degrading, fault: {kind: http_503}}
"""

CONFIG = """
region: test-1
http: {listen: "127.0.0.1:{port}", grafana_url: "http://grafana.example:3000"}
storage: {path: "{tmp}/state.db", retention: 7d}
simulator: {enabled: true, scenario: "{tmp}/scenario.yaml"}
defaults: {interval: 1s, timeout: 5s, jitter: 10%, probe: short}
providers:
  - name: sim-openai
    kind: openai_compatible
    base_url: "{simulator}/v1"
    models: [sim-fast, sim-degrading]
    prices: {sim-fast: {input_per_mtok: 0.15, output_per_mtok: 0.60}}
  - name: sim-anthropic
    kind: anthropic
    base_url: "{simulator}/v1"
    models: [sim-claude]
alerts:
  evaluation_interval: 500ms
  runbook_url: "https://runbooks.example/llm-vitals#{rule}"
  rules:
    - {name: target-down, kind: consecutive_failures, count: 3, for: 1s, resolve_after: 2,
       labels: {severity: page}}
"""


def status(d: DaemonProcess, headers: dict[str, str] | None = None) -> dict[str, Any]:
    r = httpx.get(d.url + "/api/v1/status", timeout=10, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def target_of(st: dict[str, Any], key: str) -> dict[str, Any]:
    return next(t for t in st["targets"] if t["target"] == key)


def wait_state(d: DaemonProcess, key: str, want: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        t = target_of(status(d), key)
        if not seen or seen[-1] != t["state"]:
            seen.append(t["state"])
        if t["state"] == want:
            return t
        time.sleep(0.25)
    raise AssertionError(f"{key} never became {want!r} (states seen: {seen})\n{d.logs()[-3000:]}")


def row_state(page: Rendered, key: str) -> str | None:
    m = re.search(rf'<tr data-target="{re.escape(key)}" data-state="([^"]+)"', page.dom)
    return m.group(1) if m else None


def check_page(page: Rendered) -> None:
    assert page.attr("data-ready") == "1", page.dom[:2000]
    assert page.errors() == [], page.errors()


def start(daemon_factory: Callable[..., DaemonProcess], tmp_path: Path, extra: str = "",
          env: dict[str, str] | None = None) -> DaemonProcess:
    (tmp_path / "scenario.yaml").write_text(SCENARIO)
    d = daemon_factory(CONFIG.replace('grafana_url: "http://grafana.example:3000"}',
                                      'grafana_url: "http://grafana.example:3000"' + extra + "}"), env=env)
    d.wait_ready()
    return d


def test_page_and_api_follow_the_alert_firing_silenced_ok(daemon_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = start(daemon_factory, tmp_path)
    html = httpx.get(d.url + "/", timeout=10)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert len(html.content) < 500_000
    assert "cdn" not in html.text.lower() and "https://" not in html.text.split("</head>")[0]

    # firing: the API and the page agree, with the alert's details
    t = wait_state(d, DEGRADING, "firing", 30)
    alert = next(a for a in t["alerts"] if a["rule"] == "target-down")
    assert alert["state"] == "firing" and alert["muted"] is None and alert["severity"] == "page"
    assert alert["runbook_url"] == "https://runbooks.example/llm-vitals#target-down"
    assert alert["since"] <= time.time() and "probes in a row failed" in alert["summary"]
    assert t["grafana_url"].startswith("http://grafana.example:3000/d/llm-vitals-fleet/")
    assert "var-model=sim-degrading" in t["grafana_url"]
    assert target_of(status(d), "sim-openai/sim-fast/short")["state"] == "ok"
    page = render(d.url + "/", tmp_path / "chromium", tmp_path / "statuspage-firing.png")
    check_page(page)
    assert row_state(page, DEGRADING) == "firing", page.dom
    assert row_state(page, "sim-openai/sim-fast/short") == "ok"
    assert re.search(r'<tr data-rule="target-down" data-alert-state="firing" data-muted="">', page.dom)
    assert "runbooks.example/llm-vitals#target-down" in page.dom
    # a sparkline per target with probes, drawn on a canvas of its size
    assert len([c for c in page.canvases() if c[0] > 0 and c[1] > 0]) >= 3, page.canvases()

    # silenced: `silence add` on the CLI, seen at the next evaluation
    out = subprocess.run([sys.executable, "-m", "daemon.cli", "silence", "add", "-c", str(d.config),
                          "--match", "rule=target-down", "--match", "model=sim-degrading", "--duration", "10m",
                          "--comment", "test"], capture_output=True, text=True, cwd=REPO, timeout=30)
    assert out.returncode == 0, out.stderr
    t = wait_state(d, DEGRADING, "silenced", 10)
    assert t["alerts"][0]["muted"] == "silenced"
    page = render(d.url + "/", tmp_path / "chromium")
    check_page(page)
    assert row_state(page, DEGRADING) == "silenced", page.dom
    assert 'data-muted="silenced"' in page.dom

    # ok: the degradation ends, the alert resolves (the silence outlives it)
    t = wait_state(d, DEGRADING, "ok", 45)
    assert t["alerts"] == []
    a24 = t["availability"]["24h"]
    assert a24["probes"] > 10 and a24["ok"] < a24["probes"] - 3 and a24["ratio"] == a24["ok"] / a24["probes"]
    assert 0 <= t["last_probe_age"] < 5
    page = render(d.url + "/", tmp_path / "chromium", tmp_path / "statuspage.png")
    check_page(page)
    assert row_state(page, DEGRADING) == "ok"
    assert "No alert is firing or pending." in page.dom

    # the target's own page: timeline, distribution, phases and tokens/s all drawn
    page = render(d.url + "/target/" + DEGRADING, tmp_path / "chromium", tmp_path / "target.png", (1400, 1600))
    check_page(page)
    for chart in ("timeline", "dist", "phases", "tps"):
        assert re.search(rf'id="chart-{chart}"[^>]*data-chart="drawn"', page.dom), chart
    assert all(w > 100 and h > 100 for w, h in page.canvases()), page.canvases()
    points = int(re.search(r'data-points="(\d+)"', page.dom).group(1))  # type: ignore[union-attr]
    assert points > 20
    # the outage's failed probes are marked (their own series in the legend) and listed
    assert "http_error" in page.dom and "simulated HTTP 503" in page.dom

    # the comparison: one row per model, bars drawn, the cost where a price is set
    page = render(d.url + "/compare", tmp_path / "chromium", tmp_path / "compare.png")
    check_page(page)
    assert len(re.findall(r'<tr data-target="', page.dom)) == 3
    assert re.search(r'id="chart-compare-ttft"[^>]*data-chart="drawn"', page.dom)
    assert "$0.0" in page.dom
    assert d.stop() == 0


def test_history_api_serves_what_the_page_draws(daemon_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = start(daemon_factory, tmp_path)
    time.sleep(2)
    h = httpx.get(d.url + "/api/v1/history", params={"target": DEGRADING, "since": "1h", "metric": "probes"}).json()
    stored = h["count"]
    assert stored >= 2 and len(h["probes"]["t"]) == stored
    assert h["probes"]["t"] == sorted(h["probes"]["t"])
    assert all(v is None or v > 0 for v in h["probes"]["ttft"])
    q = httpx.get(d.url + "/api/v1/history", params={"metric": "ttft", "since": "24h"}).json()
    assert q["bucket_seconds"] == 900 and len(q["t"]) in (97, 98)
    assert set(q["series"]) == {DEGRADING, "sim-openai/sim-fast/short", "sim-anthropic/sim-claude/short"}
    assert q["series"][DEGRADING]["n"][-1] >= 1
    s = httpx.get(d.url + "/api/v1/history", params={"metric": "summary", "since": "1h"}).json()
    fast = next(x for x in s["summaries"] if x["target"] == "sim-openai/sim-fast/short")
    assert fast["cost_per_1k_probes_usd"] > 0 and fast["availability"] == 1.0
    for bad in ({"metric": "nope"}, {"since": "soon"}, {"metric": "probes"}, {"since": "0s"}):
        r = httpx.get(d.url + "/api/v1/history", params=bad)
        assert r.status_code == 400 and "error" in r.json(), (bad, r.text)
    r = httpx.get(d.url + "/target/nope/nope/nope")
    assert r.status_code == 404
    assert d.stop() == 0


def test_page_and_history_need_the_token_when_one_is_set(daemon_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = start(daemon_factory, tmp_path, ", auth_token_env: VITALS_TEST_TOKEN", env={"VITALS_TEST_TOKEN": "s3cret-tok"})
    for path in ("/", "/compare", "/target/" + DEGRADING, "/api/v1/history?metric=ttft", "/api/v1/status"):
        assert httpx.get(d.url + path).status_code == 401, path
        r = httpx.get(d.url + path, headers={"Authorization": "Bearer s3cret-tok"})
        assert r.status_code == 200, (path, r.text[:200])
        assert "s3cret-tok" not in r.text
    assert d.stop() == 0
