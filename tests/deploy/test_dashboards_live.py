"""Every dashboard query returns data from real servers fed by the real daemon.

The daemon (`python -m daemon.cli run`) probes its bundled simulator (one model fails a
share of its probes, so error panels have data) every second, writes InfluxDB 1.x, and a
real Prometheus scrapes it every second with deploy/prometheus rules loaded. Then each
panel's PromQL goes to /api/v1/query and each InfluxQL to InfluxDB /query, with the
dashboard variables substituted as Grafana would for "All".
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import DaemonProcess, free_port
from tests.deploy.factories import NEEDS_FULL, RULES, dashboards, queries
from tests.servers import InfluxDB1, Prometheus, need

pytestmark = pytest.mark.servers

# Queries that may legitimately return nothing in a 30-second healthy run; they must still
# parse and execute. Keyed by (dashboard uid, panel title or "annotation NAME").
MAY_BE_EMPTY = {
    ("llm-vitals-fleet", "Firing alerts"): "no alert is firing 30 s after start (rules have `for:`)",
    ("llm-vitals-fleet", "annotation Prometheus alerts"): "no alert firing",
    ("llm-vitals-fleet", "annotation llm-vitals alerts"): "no alert firing",
    ("llm-vitals-provider", "annotation Prometheus alerts"): "no alert firing",
    ("llm-vitals-provider", "annotation llm-vitals alerts"): "no alert firing",
    ("llm-vitals-regions", "annotation Prometheus alerts"): "no alert firing",
    ("llm-vitals-self", "Queue drops"): "counter appears on the first dropped item",
    ("llm-vitals-self", "Sink errors"): "counter appears on the first sink error",
    ("llm-vitals-self", "Notifications by outcome"): "no notification is sent in the run",
    ("llm-vitals-self", "Skipped probes by reason"): "nothing is skipped (no overlap, budget or rate cap)",
    ("llm-vitals-fleet-influxql", "Alert transitions"): "no alert transition in the run",
}

SCENARIO = """\
defaults: {ttft: 120ms, itl: 8ms, jitter: 15%, tokens: 8}
models:
  sim-fast: {ttft: 80ms, itl: 5ms}
  sim-flaky:
    faults:
      - {kind: http_429, probability: 0.25, retry_after: 1s}
      - {kind: http_500, probability: 0.25}
"""

CONFIG = """\
region: test-1
simulator: {{enabled: true, scenario: {scenario}}}
http: {{listen: "127.0.0.1:{port}"}}
storage: {{path: {tmp}/state.db, retention: 1d}}
influxdb: {{url: "{influx}", api_version: 1, database: llm_vitals, flush_interval: 1s}}
defaults: {{interval: 1s, timeout: 5s, jitter: 10%, probe: short}}
providers:
  - name: sim-openai
    kind: openai_compatible
    base_url: "{{simulator}}/v1"
    models: [sim-fast, sim-flaky]
    prices: {{sim-fast: {{input_per_mtok: 0.15, output_per_mtok: 0.60}}, sim-flaky: {{input_per_mtok: 1, output_per_mtok: 2}}}}
  - name: sim-anthropic
    kind: anthropic
    base_url: "{{simulator}}/v1"
    models: [sim-claude]
"""


def substitute(q: str, kind: str) -> str:
    """What Grafana sends for "All" selections and a 1 h time range."""
    q = q.replace("$__rate_interval", "1m").replace("$__interval", "5s").replace("$__range", "1h")
    q = q.replace("$timeFilter", "time > now() - 1h")
    q = q.replace("$hdr_window", "1m").replace("$window", "5m")
    return re.sub(r"\$\{?(provider|model|region|probe|job)\}?", ".*", q)


class Stack:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.influx: InfluxDB1 | None = None
        self.prom: Prometheus | None = None
        self.daemon: DaemonProcess | None = None

    def start(self) -> None:
        need("prometheus")
        need("influxd")
        self.influx = InfluxDB1(self.tmp / "influx")
        self.influx.create_db()
        (self.tmp / "scenario.yaml").write_text(SCENARIO)
        port = free_port()
        cfg = self.tmp / "vitals.yaml"
        cfg.write_text(CONFIG.format(scenario=self.tmp / "scenario.yaml", port=port, tmp=self.tmp, influx=self.influx.url))
        self.daemon = DaemonProcess(cfg, port)
        try:
            self.daemon.wait_ready(30)
        except AssertionError as exc:
            pytest.skip(f"`llm-vitals run` did not become ready within 30 s, so the dashboards cannot be checked "
                        f"against live data: {str(exc)[-1500:]}")
        self.prom = Prometheus(self.tmp / "prom", [f"127.0.0.1:{port}"], rule_files=[str(p) for p in sorted(RULES.glob("*.rules.yml"))])
        # A reload (SIGHUP, what systemd's ExecReload sends) so the reload counter has a series.
        os.kill(self.daemon.proc.pid, signal.SIGHUP)
        # Enough history for rate() and for the detector's baseline.
        self.prom.wait_query("increase(llm_vitals_probe_ttft_seconds_count[5m]) > 0", timeout=30)
        self.prom.wait_query("llm_vitals_anomaly_score", timeout=30)
        deadline = time.monotonic() + 20
        while not self.influx.query('SELECT count("ok") FROM "probe"') and time.monotonic() < deadline:
            time.sleep(0.5)

    def stop(self) -> None:
        for s in (self.prom, self.daemon, self.influx):
            if s is not None:
                s.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("dashboards-live"))
    try:
        s.start()
        yield s
    finally:
        s.stop()


def _cases() -> list[Any]:
    out = []
    for d in dashboards().values():
        for where, kind, q in queries(d):
            if kind == "variable":
                continue
            title = re.sub(r" \[[A-Z]\]$", "", where)
            full_only = any(p["title"] == title and NEEDS_FULL in p.get("description", "") for p in d["panels"])
            empty_ok = (d["uid"], title) in MAY_BE_EMPTY or full_only  # the daemon runs the default detail
            out.append(pytest.param(d["uid"], kind, q, empty_ok, id=f"{d['uid']}:{where}"))
    return out


def prom_query(url: str, q: str) -> tuple[bool, Any]:
    body = httpx.get(url + "/api/v1/query", params={"query": q}, timeout=10).json()
    assert body.get("status") == "success", (q, body)
    return bool(body["data"]["result"]), body["data"]["result"]


def influx_query(url: str, q: str) -> tuple[bool, Any]:
    r = httpx.get(url + "/query", params={"q": q, "db": "llm_vitals", "epoch": "ms"}, timeout=10)
    assert r.status_code == 200, (q, r.text)
    res = r.json()["results"][0]
    assert "error" not in res, (q, res)
    return bool(res.get("series")), res.get("series")


@pytest.mark.parametrize(("uid", "kind", "query", "empty_ok"), _cases())
def test_panel_query_returns_data(stack: Stack, uid: str, kind: str, query: str, empty_ok: bool) -> None:
    assert stack.prom is not None and stack.influx is not None
    q = substitute(query, kind)
    assert not re.search(r"\$[A-Za-z_{]", q), q
    run = (lambda: prom_query(stack.prom.url, q)) if kind == "promql" else (lambda: influx_query(stack.influx.url, q))  # type: ignore[union-attr]
    deadline = time.monotonic() + (0 if empty_ok else 15)
    has_data, result = run()
    while not has_data and time.monotonic() < deadline:
        time.sleep(1)
        has_data, result = run()
    if not empty_ok:
        assert has_data, f"no data for {q}"
    if kind == "promql" and has_data:
        # a number, not NaN everywhere (0/0 from an empty window)
        values = [float(s["value"][1]) for s in result]
        assert any(v == v for v in values), f"only NaN from {q}"


def test_variable_queries_list_the_targets(stack: Stack) -> None:
    assert stack.prom is not None and stack.influx is not None
    r = httpx.get(stack.prom.url + "/api/v1/label/provider/values", params={"match[]": "llm_vitals_probes_total"}, timeout=10)
    assert set(r.json()["data"]) == {"sim-openai", "sim-anthropic"}
    for d in dashboards().values():
        for where, kind, q in queries(d):
            if kind == "influxql" and where.startswith("variable"):
                has, _series = influx_query(stack.influx.url, q)
                assert has, q
