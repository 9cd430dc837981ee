"""ProbeResults and alert transitions as InfluxDB line protocol (docs/architecture.md §4), serialised by
influxdb-client's Point so the v1 and v2 write paths emit identical lines."""

from __future__ import annotations

from typing import Any

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


SWEEP_FLOAT_FIELDS = ("ttft_p50", "ttft_p95", "e2e_p50", "output_tps_p50", "aggregate_output_tps")


def sweep_lines(name: str, target: str, region: str, started_at: float, outcome: str,
                levels: list[dict[str, Any]], saturation: dict[str, Any] | None) -> list[str]:
    """One point per level of a sweep run, all at the run's start: the levels differ by their
    tags (concurrency, prompt_tokens), so one run reads back as one plot against concurrency."""
    provider, model, probe = target.split("/", 2)
    out = []
    for lv in levels:
        p = Point("sweep").tag("sweep", name).tag("target", target).tag("provider", provider)
        p.tag("model", model).tag("probe", probe).tag("region", region)
        p.tag("concurrency", str(lv["concurrency"]))
        p.tag("prompt_tokens", "default" if lv["prompt_tokens"] is None else str(lv["prompt_tokens"]))
        for f in SWEEP_FLOAT_FIELDS:
            if lv.get(f) is not None:
                p.field(f, float(lv[f]))
        p.field("requests", int(lv["requests"]))
        p.field("ok", int(lv["ok"]))
        p.field("errors", int(lv["requests"]) - int(lv["ok"]))
        knee = saturation is not None and saturation["concurrency"] == lv["concurrency"] \
            and saturation["prompt_tokens"] == lv["prompt_tokens"]
        p.field("saturated", 1 if knee else 0)
        p.field("outcome", outcome)
        p.time(_ns(started_at), WritePrecision.NS)
        out.append(str(p.to_line_protocol()))
    return out
