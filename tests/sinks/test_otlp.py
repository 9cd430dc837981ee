"""OTLP/HTTP push: the daemon against a local receiver that decodes with the official protos."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from tests.conftest import free_port

CONFIG = """
region: test-otlp
http: {listen: "127.0.0.1:{port}"}
storage: {path: "{tmp}/state.db", retention: 1d}
simulator: {enabled: true}
defaults: {interval: 1s, timeout: 10s, jitter: 0%, probe: short}
alerts: {enabled: false}
otlp: {endpoint: "http://127.0.0.1:RECEIVER", interval: 1s, timeout: 1s, traces: true, headers_env: OTLP_HEADERS}
providers:
  - name: sim-openai
    kind: openai_compatible
    base_url: "{simulator}/v1"
    models: [fast-a]
  - name: sim-anthropic
    kind: anthropic
    base_url: "{simulator}/v1"
    models: [claude-x]
"""
SECRET = "otlp-s3cret-api-key-value"


def attrs(kvs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs:
        assert isinstance(kv, KeyValue)
        v = kv.value
        out[kv.key] = getattr(v, v.WhichOneof("value")) if v.WhichOneof("value") else None
    return out


@dataclass
class Receiver:
    port: int
    up: bool = True
    metrics: list[ExportMetricsServiceRequest] = field(default_factory=list)
    traces: list[ExportTraceServiceRequest] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    refused: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        if not self.up:
            self.refused += 1
            return web.Response(status=503)
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.headers.append(dict(request.headers))
        if request.path == "/v1/metrics":
            m = ExportMetricsServiceRequest()
            m.ParseFromString(body)
            self.metrics.append(m)
        elif request.path == "/v1/traces":
            t = ExportTraceServiceRequest()
            t.ParseFromString(body)
            self.traces.append(t)
        else:
            return web.Response(status=404)
        return web.Response(status=200, content_type="application/x-protobuf", body=b"")

    def latest_metrics(self) -> dict[str, Any]:
        """name -> (metric, resource attrs) from the newest export (cumulative temporality)."""
        out: dict[str, Any] = {}
        if not self.metrics:
            return out
        for rm in self.metrics[-1].resource_metrics:
            res = attrs(rm.resource.attributes)
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    out[m.name] = (m, res)
        return out

    def spans(self) -> list[tuple[Any, dict[str, Any]]]:
        return [(s, attrs(rs.resource.attributes)) for t in self.traces for rs in t.resource_spans
                for ss in rs.scope_spans for s in ss.spans]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver(free_port())
    app = web.Application()
    app.router.add_post("/{path:.*}", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", rec.port).start()
    yield rec
    await runner.cleanup()


async def wait_for(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def stored(tmp: Path) -> dict[str, dict[str, Any]]:
    """Stored probe records by request id."""
    con = sqlite3.connect(tmp / "state.db")
    try:
        rows = [json.loads(r[0]) for r in con.execute("SELECT record FROM results")]
    finally:
        con.close()
    return {r["request_id"]: r for r in rows if r.get("request_id")}


async def test_genai_metrics_and_spans_match_the_probes(daemon_factory, receiver: Receiver, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(CONFIG.replace("RECEIVER", str(receiver.port)),
                       env={"OTLP_HEADERS": f"x-api-key={SECRET},x-team=llm"})
    await asyncio.to_thread(d.wait_ready)

    def enough() -> bool:
        m = receiver.latest_metrics().get("gen_ai.client.operation.time_to_first_chunk")
        return m is not None and sum(p.count for p in m[0].histogram.data_points) >= 6 and len(receiver.spans()) >= 6

    await wait_for(enough, 40, "six probes' metrics and spans")
    assert all(h.get("X-Api-Key", h.get("x-api-key")) == SECRET for h in receiver.headers)

    latest = receiver.latest_metrics()
    units = {"gen_ai.client.operation.duration": "s", "gen_ai.client.operation.time_to_first_chunk": "s",
             "gen_ai.client.operation.time_per_output_chunk": "s", "gen_ai.client.token.usage": "{token}",
             "llm_vitals.probe.phase.duration": "s", "llm_vitals.probes": "{probe}"}
    for name, unit in units.items():
        assert name in latest, sorted(latest)
        assert latest[name][0].unit == unit, name
    metric, resource = latest["gen_ai.client.operation.time_to_first_chunk"]
    assert resource["service.name"] == "llm-vitals" and resource["llm_vitals.region"] == "test-otlp"
    assert resource["service.version"]
    points = metric.histogram.data_points
    by_model = {attrs(p.attributes)["gen_ai.request.model"]: attrs(p.attributes) for p in points}
    assert set(by_model) == {"fast-a", "claude-x"}
    a = by_model["claude-x"]
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.provider.name"] == "anthropic"
    assert a["gen_ai.system"] == "anthropic"  # pre-1.37 name kept unless OTEL_SEMCONV_STABILITY_OPT_IN says otherwise
    assert by_model["fast-a"]["gen_ai.provider.name"] == "sim-openai"  # openai_compatible: the configured name
    assert a["server.address"] == "127.0.0.1" and a["server.port"] > 0 and a["llm_vitals.probe"] == "short"
    assert "error.type" not in a
    assert list(points[0].explicit_bounds)[:3] == [0.01, 0.02, 0.04]
    usage = latest["gen_ai.client.token.usage"][0].histogram.data_points
    assert {attrs(p.attributes)["gen_ai.token.type"] for p in usage} == {"input", "output"}

    # Every span is one stored probe: same ttft (to the microsecond the store keeps), same e2e.
    records = stored(tmp_path)
    matched = 0
    for span, res in receiver.spans():
        sa = attrs(span.attributes)
        assert span.name == f"chat {sa['gen_ai.request.model']}" and span.kind == span.SPAN_KIND_CLIENT
        assert res["service.name"] == "llm-vitals"
        rec = records.get(sa.get("llm_vitals.request_id"))
        if rec is None:
            continue
        events = {e.name: (e.time_unix_nano - span.start_time_unix_nano) / 1e9 for e in span.events}
        assert {"gen_ai.first_byte", "gen_ai.first_token"} <= set(events)
        assert abs(events["gen_ai.first_token"] - rec["ttft"]) < 0.001
        assert abs((span.end_time_unix_nano - span.start_time_unix_nano) / 1e9 - rec["e2e"]) < 0.001
        assert sa["gen_ai.usage.output_tokens"] == rec["output_tokens"]
        matched += 1
    assert matched >= 4, (matched, len(records))
    await asyncio.to_thread(d.stop)
    assert SECRET not in d.logs()


async def test_a_dead_receiver_costs_only_counted_errors(daemon_factory, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(CONFIG.replace("RECEIVER", str(receiver.port)), env={"OTLP_HEADERS": "x-team=llm"})
    await asyncio.to_thread(d.wait_ready)
    await wait_for(lambda: bool(receiver.metrics), 30, "the first export")

    def probes_and_errors() -> tuple[float, float]:
        text = httpx.get(d.url + "/metrics", timeout=5).text
        probes = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                     if line.startswith("llm_vitals_probes_total{"))
        errors = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                     if line.startswith('llm_vitals_sink_errors_total{sink="otlp"}'))
        return probes, errors

    receiver.up = False
    p0, e0 = await asyncio.to_thread(probes_and_errors)
    await asyncio.sleep(8)
    p1, e1 = await asyncio.to_thread(probes_and_errors)
    assert e1 - e0 >= 3, (e0, e1)  # metric and span exports failing, each counted
    assert p1 - p0 >= 2 * 6, (p0, p1)  # two targets at 1/s kept (nearly) their schedule
    r = httpx.get(d.url + "/readyz", timeout=5)
    assert r.status_code == 200  # a dead telemetry receiver does not take the prober out of service
    assert r.json()["sinks"]["otlp"]["ok"] is False and "otlp" in r.json()["degraded_sinks"], r.json()

    receiver.up = True
    n = len(receiver.metrics)
    await wait_for(lambda: len(receiver.metrics) > n, 15, "exports after the receiver came back")
    await wait_for(lambda: httpx.get(d.url + "/readyz", timeout=5).json()["sinks"]["otlp"]["ok"], 15,
                   "the sink to report healthy again")
    await asyncio.to_thread(d.stop)
    logs = d.logs()
    assert logs.count("otlp_export_failing") <= 2 and "otlp_export_recovered" in logs  # once per change, per signal


async def test_latest_semconv_opt_in_drops_the_old_attribute(daemon_factory, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(CONFIG.replace("RECEIVER", str(receiver.port)),
                       env={"OTLP_HEADERS": "x-team=llm", "OTEL_SEMCONV_STABILITY_OPT_IN": "http,gen_ai_latest_experimental"})
    await asyncio.to_thread(d.wait_ready)
    await wait_for(lambda: "gen_ai.client.operation.duration" in receiver.latest_metrics(), 30, "a metrics export")
    m, _ = receiver.latest_metrics()["gen_ai.client.operation.duration"]
    for p in m.histogram.data_points:
        a = attrs(p.attributes)
        assert "gen_ai.provider.name" in a and "gen_ai.system" not in a


async def test_span_queue_is_bounded_and_its_drops_counted() -> None:
    from datetime import UTC, datetime

    from core.result import Outcome, ProbeResult
    from daemon.config import OtlpConfig
    from daemon.metrics import Metrics
    from daemon.sinks.otlp import OtlpSink

    metrics = Metrics()
    # A collector that accepts connections and never answers (the kernel completes the
    # handshakes of a listening socket nobody accepts from), and an export schedule far
    # away: the exporter holds its first batch of 5 for its whole 1 s timeout, so every
    # span after the queue's 5 is dropped. (Against a closed port the export failed at
    # once, and on some runs the exporter thread drained batch after batch: 30 dropped of
    # 50, where the bound says at least 40.)
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        cfg = OtlpConfig(endpoint=f"http://127.0.0.1:{hung.getsockname()[1]}", interval=3600, timeout=1,
                         traces=True, max_queued_spans=5)
        sink = OtlpSink(cfg, {"p": ("openai", "https://api.example.com/v1")}, metrics, "r1")
        for i in range(50):
            sink.observe(ProbeResult("p", "m", "short", "r1", datetime.now(UTC), Outcome.OK, ttfb=0.1, ttft=0.2,
                                    e2e=0.5 + i / 1000, output_tokens=3, input_tokens=9))
        h = sink._health
        queued = h.spans_ended - h.spans_taken
        assert h.spans_ended == 50 and 0 <= queued <= 5
        # at most one batch taken by the hung export, at most 5 queued: the rest dropped
        assert h.spans_taken - h.spans_dropped <= 5, (h.spans_dropped, h.spans_taken)
        assert h.spans_dropped >= 40, (h.spans_dropped, h.spans_taken)
        assert sink.health()["spans_dropped"] == h.spans_dropped
        assert metrics.sink_points.labels("otlp", "dropped")._value.get() >= h.spans_dropped
    await sink.stop(2.0)  # the collector gone: the held export fails at once
