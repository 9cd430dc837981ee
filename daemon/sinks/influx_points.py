"""ProbeResults and alert transitions as InfluxDB line protocol (docs/architecture.md §4), serialised by
influxdb-client's Point so the v1 and v2 write paths emit identical lines."""

from __future__ import annotations

from influxdb_client import Point, WritePrecision

from alerts.model import AlertTransition
from core.result import ProbeResult

FLOAT_FIELDS = ("connect", "tls", "ttfb", "ttft", "ttft_content", "e2e", "tpot", "itl_mean", "itl_p50",
                "itl_p95", "itl_max", "output_tps")
INT_FIELDS = ("output_tokens", "input_tokens", "reasoning_tokens", "status_code")


def _ns(dt_seconds: float) -> int:
    return round(dt_seconds * 1_000_000) * 1000  # microsecond precision, as started_at has


def probe_line(r: ProbeResult) -> str:
    p = Point("probe")
    for tag in ("provider", "model", "probe", "region"):
        p.tag(tag, getattr(r, tag))
    p.tag("outcome", r.outcome.value)
    for name in FLOAT_FIELDS:
        v = getattr(r, name)
        if v is not None:
            p.field(name, float(v))
    for name in INT_FIELDS:
        v = getattr(r, name)
        if v is not None:
            p.field(name, int(v))
    p.field("ok", 1 if r.ok else 0)  # a probe always has at least one field
    p.field("tokens_source", r.tokens_source.value)
    if r.error:
        p.field("error", r.error[:500])
    p.time(_ns(r.started_at.timestamp()), WritePrecision.NS)
    return str(p.to_line_protocol())


def alert_line(t: AlertTransition) -> str:
    p = Point("alert").tag("rule", t.rule).tag("severity", t.severity).tag("state", t.state)
    for k, v in sorted(t.labels.items()):
        if k not in ("rule", "severity", "state") and v:
            p.tag(k, v)
    p.field("fingerprint", t.fingerprint)
    p.field("summary", t.summary[:500] or t.state)
    if t.value is not None:
        p.field("value", float(t.value))
    p.time(_ns(t.at.timestamp()), WritePrecision.NS)
    return str(p.to_line_protocol())
