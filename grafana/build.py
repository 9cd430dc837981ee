"""Build the committed Grafana dashboards in grafana/dashboards/ (python grafana/build.py).

Plain dicts, no dependency: the dashboards use Prometheus and InfluxQL targets, and the
InfluxQL half has no builder in grafana-foundation-sdk. `--check` exits 1 when a
committed file differs from what this script builds (tests run it).

Conventions every panel follows (tests/deploy/test_dashboards*.py rely on them):
  - data source by variable: ${datasource} (Prometheus) or ${influxdb} (InfluxDB 1.x/InfluxQL)
  - target filters use the multi-value variables with regex matchers: provider=~"$provider"
  - $window is the latency/ratio window (probes run every 10 s .. minutes, so a rate over
    Grafana's $__rate_interval of ~1 min often holds no probe at all); heatmaps use
    $__rate_interval on purpose (one column per probe cadence is what a heatmap shows)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards"
PROM = {"type": "prometheus", "uid": "${datasource}"}
INFLUX = {"type": "influxdb", "uid": "${influxdb}"}
SEL = 'provider=~"$provider", model=~"$model", probe=~"$probe", region=~"$region"'
TAGS = ["llm-vitals"]
QUANTILES = ("0.5", "0.95", "0.99")

Json = dict[str, Any]


# -- building blocks ---------------------------------------------------------------
def prom(expr: str, legend: str = "", ref: str = "A", **extra: Any) -> Json:
    t = {"refId": ref, "datasource": PROM, "expr": expr, "legendFormat": legend or "__auto", "range": True}
    t.update(extra)
    return t


def influxql(query: str, alias: str = "", ref: str = "A", fmt: str = "time_series") -> Json:
    return {"refId": ref, "datasource": INFLUX, "query": query, "rawQuery": True,
            "resultFormat": fmt, "alias": alias}


def _refs(targets: list[Json]) -> list[Json]:
    for i, t in enumerate(targets):
        t["refId"] = chr(ord("A") + i)
    return targets


def panel(kind: str, title: str, targets: list[Json], w: int = 12, h: int = 8, unit: str = "",
          description: str = "", ds: Json = PROM, custom: Json | None = None, options: Json | None = None,
          interval: str = "", **defaults: Any) -> Json:
    field_defaults: Json = {"custom": custom or {}}
    if unit:
        field_defaults["unit"] = unit
    field_defaults.update(defaults)
    p = {
        "type": kind, "title": title, "description": description, "datasource": ds,
        "targets": _refs(targets), "gridPos": {"w": w, "h": h},
        "fieldConfig": {"defaults": field_defaults, "overrides": []},
        "options": options or {},
    }
    if interval:
        p["interval"] = interval  # min step: a daily increase needs no 15 s resolution
    return p


NEEDS_FULL = "Needs `metrics.detail: full` (the default `standard` does not export this series)."


def full_only(p: Json) -> Json:
    """Mark a panel whose series only `metrics.detail: full` exports (README: metrics and their cost)."""
    p["description"] = (p["description"] + " " if p["description"] else "") + NEEDS_FULL
    return p


def timeseries(title: str, targets: list[Json], unit: str = "s", stack: bool = False, bars: bool = False,
               **kw: Any) -> Json:
    custom = {"drawStyle": "bars" if bars else "line", "fillOpacity": 60 if stack or bars else 10,
              "lineWidth": 1, "showPoints": "never", "spanNulls": True,
              "stacking": {"mode": "normal" if stack else "none", "group": "A"}}
    opts = {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max", "lastNotNull"]},
            "tooltip": {"mode": "multi", "sort": "desc"}}
    return panel("timeseries", title, targets, unit=unit, custom=custom, options=opts, **kw)


def stat(title: str, targets: list[Json], unit: str = "", w: int = 6, h: int = 4, **kw: Any) -> Json:
    opts = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background", "graphMode": "area", "textMode": "auto"}
    return panel("stat", title, targets, w=w, h=h, unit=unit, options=opts, **kw)


def thresholds(*steps: tuple[float | None, str]) -> Json:
    return {"mode": "absolute", "steps": [{"value": v, "color": c} for v, c in steps]}


def bargauge(title: str, targets: list[Json], unit: str = "", **kw: Any) -> Json:
    opts = {"orientation": "horizontal", "displayMode": "lcd", "showUnfilled": True,
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
    return panel("bargauge", title, targets, unit=unit, options=opts, **kw)


def table(title: str, targets: list[Json], **kw: Any) -> Json:
    for t in targets:
        if t.get("datasource") == PROM:
            t.update({"instant": True, "range": False, "format": "table"})
    return panel("table", title, targets, options={"showHeader": True}, **kw)


def heatmap(title: str, targets: list[Json], **kw: Any) -> Json:
    for t in targets:
        t["format"] = "heatmap"
    opts = {"calculate": False, "yAxis": {"unit": "s"}, "cellGap": 1,
            "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64},
            "tooltip": {"show": True, "yHistogram": True}, "rowsFrame": {"layout": "auto"}}
    return panel("heatmap", title, targets, options=opts, **kw)


def row(title: str) -> Json:
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "gridPos": {"w": 24, "h": 1}}


def text(content: str, w: int = 24, h: int = 3) -> Json:
    return {"type": "text", "title": "", "gridPos": {"w": w, "h": h},
            "options": {"mode": "markdown", "content": content}}


def layout(panels: list[Json]) -> list[Json]:
    """Flow panels left to right, wrapping at 24 columns; give each an id."""
    x = y = row_h = 0
    for i, p in enumerate(panels, start=1):
        gp = p["gridPos"]
        if x + gp["w"] > 24:
            x, y, row_h = 0, y + row_h, 0
        gp["x"], gp["y"] = x, y
        p["id"] = i
        x += gp["w"]
        row_h = max(row_h, gp["h"])
        if gp["w"] == 24:
            x, y, row_h = 0, y + gp["h"], 0
    return panels


def ds_var(name: str, kind: str, label: str, default_uid: str) -> Json:
    return {"name": name, "type": "datasource", "query": kind, "label": label,
            "current": {"text": default_uid, "value": default_uid}, "hide": 0, "refresh": 1,
            "regex": "", "options": []}


def label_var(name: str, label: str, depends: str = "") -> Json:
    sel = f"{{{depends}}}" if depends else ""
    return {"name": name, "label": label, "type": "query", "datasource": PROM,
            "query": {"query": f"label_values(llm_vitals_probes_total{sel}, {name})", "refId": "v"},
            "definition": f"label_values(llm_vitals_probes_total{sel}, {name})",
            "multi": True, "includeAll": True, "allValue": ".*",
            "current": {"text": "All", "value": "$__all"}, "refresh": 2, "sort": 1, "hide": 0,
            "regex": "", "options": []}


def influx_var(name: str, label: str) -> Json:
    q = f'SHOW TAG VALUES FROM "probe" WITH KEY = "{name}"'
    return {"name": name, "label": label, "type": "query", "datasource": INFLUX, "query": q,
            "definition": q, "multi": True, "includeAll": True, "allValue": ".*",
            "current": {"text": "All", "value": "$__all"}, "refresh": 2, "sort": 1, "hide": 0,
            "regex": "", "options": []}


def window_var(default: str = "5m") -> Json:
    opts = ["1m", "5m", "15m", "1h", "6h"]
    return {"name": "window", "label": "Window", "type": "custom", "query": ",".join(opts),
            "current": {"text": default, "value": default}, "hide": 0,
            "description": "Window for rates, ratios and histogram quantiles: several probe intervals long.",
            "options": [{"text": o, "value": o, "selected": o == default} for o in opts]}


def hdr_window_var() -> Json:
    opts = ["1m", "5m", "1h"]
    return {"name": "hdr_window", "label": "Exact-quantile window", "type": "custom", "query": ",".join(opts),
            "current": {"text": "5m", "value": "5m"}, "hide": 0,
            "description": "Sliding window of the daemon's HDR quantiles (llm_vitals_latency_quantile_seconds).",
            "options": [{"text": o, "value": o, "selected": o == "5m"} for o in opts]}


PROM_ALERT_ANNOTATION = {
    "name": "Prometheus alerts", "enable": True, "iconColor": "red", "datasource": PROM,
    "expr": 'ALERTS{alertname=~"LLMVitals.*", alertstate="firing", provider=~"$provider"}',
    "step": "60s", "titleFormat": "{{alertname}}", "textFormat": "{{provider}}/{{model}} {{region}}",
    "tagKeys": "severity,region", "useValueForTime": False,
}
DAEMON_ALERT_ANNOTATION = {
    "name": "llm-vitals alerts", "enable": True, "iconColor": "orange", "datasource": PROM,
    "expr": "llm_vitals_alerts_firing > 0", "step": "60s",
    "titleFormat": "{{rule}}", "textFormat": "severity {{severity}}", "tagKeys": "severity",
}
BUILTIN_ANNOTATION = {
    "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True, "hide": True,
    "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard",
}


def dashboard(uid: str, title: str, description: str, panels: list[Json], variables: list[Json],
              annotations: list[Json] | None = None, time_from: str = "now-6h") -> Json:
    links = [{"title": "llm-vitals", "type": "dashboards", "tags": TAGS, "asDropdown": True,
              "includeVars": True, "keepTime": True}]
    return {
        "uid": uid, "title": title, "description": description, "tags": TAGS, "editable": True,
        "schemaVersion": 39, "version": 1, "refresh": "30s", "graphTooltip": 1,
        "time": {"from": time_from, "to": "now"}, "timezone": "", "weekStart": "", "fiscalYearStartMonth": 0,
        "liveNow": False, "links": links,
        "annotations": {"list": [BUILTIN_ANNOTATION, *(annotations or [])]},
        "templating": {"list": variables}, "panels": layout(panels),
    }


def by(labels: str, expr: str) -> str:
    return f"sum by ({labels}) ({expr})"


def hq(q: str, metric: str, labels: str, window: str = "$window") -> str:
    return f"histogram_quantile({q}, sum by (le, {labels}) (rate({metric}_bucket{{{SEL}}}[{window}])))"


def availability(labels: str, window: str = "$window") -> str:
    return (f'sum by ({labels}) (increase(llm_vitals_probes_total{{outcome="ok", {SEL}}}[{window}]))'
            f" / sum by ({labels}) (increase(llm_vitals_probes_total{{{SEL}}}[{window}]))")


PROM_VARS = [
    ds_var("datasource", "prometheus", "Prometheus", "llm-vitals-prometheus"),
    label_var("provider", "Provider"),
    label_var("model", "Model", 'provider=~"$provider"'),
    label_var("region", "Region"),
    label_var("probe", "Probe"),
    window_var(),
]


# -- dashboards --------------------------------------------------------------------
def fleet() -> Json:
    pm = "provider, model"
    panels = [
        stat("Availability ($window)", [prom(f'sum(increase(llm_vitals_probes_total{{outcome="ok", {SEL}}}[$window])) / sum(increase(llm_vitals_probes_total{{{SEL}}}[$window]))')],
             unit="percentunit", decimals=2, thresholds=thresholds((None, "red"), (0.95, "orange"), (0.99, "green")),
             description="Share of probes with outcome ok, all selected targets."),
        stat("Targets failing now", [prom(f"count(llm_vitals_probe_success{{{SEL}}} == 0) or vector(0)")],
             thresholds=thresholds((None, "green"), (1, "red")),
             description="Targets whose last probe failed (llm_vitals_probe_success == 0)."),
        stat("Firing alerts", [prom('count(ALERTS{alertname=~"LLMVitals.*", alertstate="firing"}) or vector(0)', "Prometheus"),
                               prom("sum(llm_vitals_alerts_firing) or vector(0)", "daemon")],
             thresholds=thresholds((None, "green"), (1, "red")),
             description="Prometheus rules (deploy/prometheus) and the daemon's own alert engine."),
        stat("Probe cost per day (projected)", [prom(f"sum(rate(llm_vitals_probe_cost_usd_total{{{SEL}}}[1h])) * 86400")],
             unit="currencyUSD", decimals=2, thresholds=thresholds((None, "blue")),
             description="Spend rate of the last hour, as USD per day (prices from the config)."),
        bargauge("Availability by provider / model ($window)", [prom(availability(pm), "{{provider}} / {{model}}")],
                 unit="percentunit", min=0.9, max=1, decimals=2, h=9,
                 thresholds=thresholds((None, "red"), (0.95, "orange"), (0.99, "green"))),
        timeseries("Availability over time", [prom(availability(pm), "{{provider}} / {{model}}")],
                   unit="percentunit", h=9, max=1),
        row("Latency"),
        timeseries("TTFT p50 / p95 / p99", [prom(hq(q, "llm_vitals_probe_ttft_seconds", pm), f"p{float(q) * 100:g} {{{{provider}}}} / {{{{model}}}}") for q in QUANTILES],
                   w=12, description="Time to first token (text or reasoning), from the start of the request."),
        timeseries("End-to-end p50 / p95", [prom(hq(q, "llm_vitals_probe_e2e_seconds", pm), f"p{float(q) * 100:g} {{{{provider}}}} / {{{{model}}}}") for q in QUANTILES[:2]],
                   w=12),
        full_only(timeseries("Output tokens/s (median)", [prom(hq("0.5", "llm_vitals_output_tokens_per_second", pm), "{{provider}} / {{model}}")],
                             unit="short", w=12, description="Generation speed after the first token.")),
        timeseries("Errors by outcome", [prom(by("provider, model, outcome", f'increase(llm_vitals_probes_total{{outcome!="ok", {SEL}}}[$window])'), "{{provider}} / {{model}}: {{outcome}}")],
                   unit="short", bars=True, stack=True, w=12, description="Failed probes per window, by outcome."),
        row("Alerts and cost"),
        table("Firing alerts", [prom('ALERTS{alertname=~"LLMVitals.*", alertstate="firing"}'),
                                prom("llm_vitals_alerts_firing > 0")], w=12, h=8,
              description="Prometheus alerts (ALERTS) and the daemon's alert engine (llm_vitals_alerts_firing)."),
        timeseries("Probe cost per day", [prom(by(pm, f"increase(llm_vitals_probe_cost_usd_total{{{SEL}}}[1d])"), "{{provider}} / {{model}}")],
                   unit="currencyUSD", w=12, bars=True, stack=True, interval="1h",
                   description="USD spent on probes over the previous 24 h (config prices)."),
        timeseries("Tokens per day", [prom(by("provider, direction", f"increase(llm_vitals_tokens_total{{{SEL}}}[1d])"), "{{provider}} {{direction}}")],
                   unit="short", w=12, interval="1h"),
        table("Last probe per target", [prom(f"llm_vitals_probe_success{{{SEL}}}"),
                                        prom(f"time() - llm_vitals_probe_last_timestamp_seconds{{{SEL}}}")], w=12),
    ]
    return dashboard("llm-vitals-fleet", "LLM vitals / Fleet overview",
                     "Every provider and model at a glance: availability, latency, speed, errors, alerts, cost.",
                     panels, PROM_VARS, [PROM_ALERT_ANNOTATION, DAEMON_ALERT_ANNOTATION])


def provider() -> Json:
    # The last probe's phases, averaged over the window (exported at every detail level).
    phase_mean = lambda ph: f'avg(avg_over_time(llm_vitals_probe_last_phase_seconds{{phase="{ph}", {SEL}}}[$window]))'  # noqa: E731
    hdr = lambda metric, q: (f'llm_vitals_latency_quantile_seconds{{metric="{metric}", quantile="{q}", window="$hdr_window", {SEL}}}')  # noqa: E731
    all_q = ("0.5", "0.9", "0.95", "0.99")
    panels = [
        timeseries("Where the time goes (mean per phase, stacked)", [
            prom(phase_mean("connect"), "connect"),
            prom(phase_mean("tls"), "tls"),
            prom(f'{phase_mean("ttfb")} - ({phase_mean("connect")}) - ({phase_mean("tls")})', "ttfb (request sent → headers)"),
            prom(f'{phase_mean("ttft")} - ({phase_mean("ttfb")})', "ttft (headers → first token)"),
            prom(phase_mean("generation"), "generation (first token → end)"),
        ], stack=True, w=24, h=9,
            description="Phases are offsets from the request start, so the stack shows the differences of their means: "
                        "connect + tls + (ttfb - connect - tls) + (ttft - ttfb) + generation = mean e2e. "
                        "connect and tls are 0 on a reused connection. Sampled from the last probe's phases at "
                        "each scrape (llm_vitals_probe_last_phase_seconds)."),
        heatmap("TTFT distribution", [prom(f"sum by (le) (increase(llm_vitals_probe_ttft_seconds_bucket{{{SEL}}}[$__rate_interval]))", "{{le}}")],
                w=12, h=9, description="Probe counts per TTFT bucket."),
        full_only(timeseries("TTFT exact quantiles (HDR, $hdr_window)", [prom(hdr("ttft", q), f"p{float(q) * 100:g} {{{{model}}}} {{{{region}}}}") for q in all_q],
                   w=12, h=9, description="Computed by the daemon over a sliding window: exact, per target, not aggregatable.")),
        full_only(timeseries("Inter-token latency (ITL) p50 / p95 / p99", [prom(hq(q, "llm_vitals_probe_itl_seconds", "model, region"), f"p{float(q) * 100:g} {{{{model}}}} {{{{region}}}}") for q in QUANTILES],
                   w=12, description="Gaps between consecutive token-bearing chunks.")),
        full_only(timeseries("Time per output token (TPOT) p50 / p95", [prom(hq(q, "llm_vitals_probe_tpot_seconds", "model, region"), f"p{float(q) * 100:g} {{{{model}}}} {{{{region}}}}") for q in QUANTILES[:2]],
                   w=12)),
        full_only(timeseries("TTFT visible text vs any token (p95, HDR)", [prom(hdr("ttft", "0.95"), "any token {{model}}"), prom(hdr("ttft_content", "0.95"), "visible text {{model}}")],
                   w=12, description="They differ for reasoning models: the reasoning tokens come first.")),
        full_only(timeseries("Output tokens/s p50 (HDR)", [prom(f'llm_vitals_latency_quantile_seconds{{metric="output_tps", quantile="0.5", window="$hdr_window", {SEL}}}', "{{model}} {{region}}")],
                   unit="short", w=12, description="Tokens per second after the first token (the gauge is in tokens/s despite its name).")),
        full_only(timeseries("Rate-limit headroom", [prom(f"llm_vitals_rate_limit_remaining{{{SEL}}}", "{{model}} {{kind}}")],
                   unit="short", w=12, description="Remaining requests/tokens the provider reported in its rate-limit headers on the last probe.")),
        timeseries("Anomaly score", [prom(f"llm_vitals_anomaly_score{{{SEL}}}", "{{model}} {{metric}}")],
                   unit="short", w=12, thresholds=thresholds((None, "green"), (1, "red")),
                   description="Recent probes against the baseline; 1 or more is anomalous. Alert annotations are overlaid."),
        timeseries("Outcomes", [prom(by("outcome", f"increase(llm_vitals_probes_total{{{SEL}}}[$window])"), "{{outcome}}")],
                   unit="short", bars=True, stack=True, w=12),
        timeseries("Availability by region", [prom(availability("region"), "{{region}}")], unit="percentunit", w=12, max=1),
    ]
    for p in panels:  # draw the anomaly threshold as a line
        if p["title"] == "Anomaly score":
            p["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"] = {"mode": "line"}
    return dashboard("llm-vitals-provider", "LLM vitals / Provider drill-down",
                     "One provider (and its models, regions, probes) in detail: phases, distributions, rate limits, anomalies.",
                     panels, [*PROM_VARS, hdr_window_var()], [PROM_ALERT_ANNOTATION, DAEMON_ALERT_ANNOTATION])


def regions() -> Json:
    pr = "provider, region"
    panels = [
        text("One llm-vitals replica per region (label `region`). A provider failing in one region is often the "
             "network there; failing in two or more is the provider (alert LLMVitalsProviderDownMultiRegion)."),
        bargauge("Availability by provider and region ($window)", [prom(availability(pr), "{{provider}} @ {{region}}")],
                 unit="percentunit", min=0.9, max=1, decimals=2, h=10,
                 thresholds=thresholds((None, "red"), (0.95, "orange"), (0.99, "green"))),
        timeseries("Regions where the provider is down (>= 50% errors, 5m)", [
            prom(f'sum by (provider) ((sum by (provider, region) (increase(llm_vitals_probes_total{{outcome!="ok", {SEL}}}[5m])) '
                 f"/ sum by (provider, region) (increase(llm_vitals_probes_total{{{SEL}}}[5m]))) >= bool 0.5)", "{{provider}}")],
            unit="short", h=10, min=0, decimals=0,
            description="Count of regions in which at least half of a provider's probes failed; the quorum alert pages at 2."),
        timeseries("TTFT p95 by region", [prom(hq("0.95", "llm_vitals_probe_ttft_seconds", pr), "{{provider}} @ {{region}}")], w=12),
        timeseries("End-to-end p95 by region", [prom(hq("0.95", "llm_vitals_probe_e2e_seconds", pr), "{{provider}} @ {{region}}")], w=12),
        timeseries("Connect + TLS mean by region", [prom(
            f'sum by (region) (avg_over_time(llm_vitals_probe_last_phase_seconds{{phase=~"connect|tls", {SEL}}}[$window])) '
            f'/ count by (region) (avg_over_time(llm_vitals_probe_last_phase_seconds{{phase="connect", {SEL}}}[$window]))', "{{region}}")],
            w=12, description="Network distance from each region to the providers (the last probes' connect and TLS "
                              "phases; 0 on a reused connection)."),
        full_only(timeseries("Output tokens/s p50 by region", [prom(hq("0.5", "llm_vitals_output_tokens_per_second", pr), "{{provider}} @ {{region}}")],
                   unit="short", w=12)),
        table("Last probe by target and region", [prom(f"llm_vitals_probe_success{{{SEL}}}")], w=24),
    ]
    return dashboard("llm-vitals-regions", "LLM vitals / Region comparison",
                     "The same providers seen from every region.", panels, PROM_VARS,
                     [PROM_ALERT_ANNOTATION])


def self_health() -> Json:
    inst = 'job=~"$job"'
    variables = [
        ds_var("datasource", "prometheus", "Prometheus", "llm-vitals-prometheus"),
        {"name": "job", "label": "Job", "type": "query", "datasource": PROM,
         "query": {"query": "label_values(llm_vitals_build_info, job)", "refId": "v"},
         "definition": "label_values(llm_vitals_build_info, job)", "multi": True, "includeAll": True,
         "allValue": ".*", "current": {"text": "All", "value": "$__all"}, "refresh": 2, "sort": 1, "hide": 0,
         "regex": "", "options": []},
        window_var(),
    ]
    panels = [
        stat("Daemons up", [prom(f"sum(up{{{inst}}})")], thresholds=thresholds((None, "red"), (1, "green"))),
        stat("Targets", [prom(f"sum(llm_vitals_targets{{{inst}}})")], thresholds=thresholds((None, "blue"))),
        stat("Probes in flight", [prom(f"sum(llm_vitals_probes_in_flight{{{inst}}})")], thresholds=thresholds((None, "blue"))),
        stat("Budget paused", [prom(f"max(llm_vitals_budget_paused{{{inst}}}) or vector(0)")],
             thresholds=thresholds((None, "green"), (1, "red"))),
        timeseries("Event loop lag", [prom(f"llm_vitals_event_loop_lag_seconds{{{inst}}}", "{{instance}}")], w=12,
                   description="How late a 100 ms timer fires. Lag inflates the timestamps of probes."),
        timeseries("Scheduler lag p50 / p99", [prom(f"histogram_quantile({q}, sum by (le, instance) (rate(llm_vitals_scheduler_lag_seconds_bucket{{{inst}}}[$window])))", f"p{float(q) * 100:g} {{{{instance}}}}") for q in ("0.5", "0.99")],
                   w=12, description="Delay between a probe's scheduled and actual start."),
        timeseries("Queue depth", [prom(f"llm_vitals_queue_depth{{{inst}}}", "{{instance}} {{queue}}")], unit="short", w=12),
        timeseries("Queue drops", [prom(f"sum by (instance, queue) (increase(llm_vitals_queue_dropped_total{{{inst}}}[$window]))", "{{instance}} {{queue}}")],
                   unit="short", bars=True, w=12),
        timeseries("Sink errors", [prom(f"sum by (instance, sink) (increase(llm_vitals_sink_errors_total{{{inst}}}[$window]))", "{{instance}} {{sink}}")],
                   unit="short", bars=True, w=12),
        timeseries("Sink points by state", [prom(f"sum by (sink, state) (rate(llm_vitals_sink_points_total{{{inst}}}[$window]))", "{{sink}} {{state}}")],
                   unit="short", w=12, description="Points per second written, spooled, replayed, dropped or rejected."),
        timeseries("Sink spool (points waiting)", [prom(f"llm_vitals_sink_spool_points{{{inst}}}", "{{instance}} {{sink}}")], unit="short", w=12),
        timeseries("Sink write p95", [prom(f"histogram_quantile(0.95, sum by (le, sink) (rate(llm_vitals_sink_write_seconds_bucket{{{inst}}}[$window])))", "{{sink}}")], w=12),
        timeseries("Notifications by outcome", [prom(f"sum by (receiver, outcome) (increase(llm_vitals_notifications_total{{{inst}}}[$window]))", "{{receiver}} {{outcome}}")],
                   unit="short", bars=True, w=12),
        timeseries("Skipped probes by reason", [prom(f"sum by (provider, reason) (increase(llm_vitals_probes_skipped_total{{{inst}}}[$window]))", "{{provider}} {{reason}}")],
                   unit="short", bars=True, w=12, description="Scheduled probes not run (overlap, budget, rate cap)."),
        timeseries("Config reloads", [prom(f"sum by (instance, outcome) (increase(llm_vitals_config_reloads_total{{{inst}}}[$window]))", "{{instance}} {{outcome}}")],
                   unit="short", bars=True, w=12),
        table("Build", [prom(f"llm_vitals_build_info{{{inst}}}")], w=12),
    ]
    return dashboard("llm-vitals-self", "LLM vitals / Self-health",
                     "Is the monitor itself healthy? Loop and scheduler lag, queues, sinks, notifications.",
                     panels, variables, time_from="now-3h")


def fleet_influxql() -> Json:
    where = ('"provider" =~ /^$provider$/ AND "model" =~ /^$model$/ AND "probe" =~ /^$probe$/ '
             'AND "region" =~ /^$region$/ AND $timeFilter')
    grp = 'GROUP BY time($__interval), "provider", "model" fill(none)'
    alias = "$tag_provider / $tag_model"
    variables = [
        ds_var("influxdb", "influxdb", "InfluxDB", "llm-vitals-influxdb"),
        influx_var("provider", "Provider"), influx_var("model", "Model"),
        influx_var("region", "Region"), influx_var("probe", "Probe"),
    ]

    def pct(field: str, q: int) -> Json:
        return influxql(f'SELECT percentile("{field}", {q}) FROM "probe" WHERE {where} {grp}', f"p{q} {alias}")

    panels = [
        stat("Availability", [influxql(f'SELECT mean("ok") FROM "probe" WHERE {where}', "availability")],
             unit="percentunit", decimals=2, ds=INFLUX, w=8, thresholds=thresholds((None, "red"), (0.95, "orange"), (0.99, "green"))),
        stat("Probes", [influxql(f'SELECT count("ok") FROM "probe" WHERE {where}', "probes")], ds=INFLUX, w=8,
             thresholds=thresholds((None, "blue"))),
        stat("Failed probes", [influxql(f'SELECT count("ok") FROM "probe" WHERE "outcome" != \'ok\' AND {where}', "failed")],
             ds=INFLUX, w=8, thresholds=thresholds((None, "green"), (1, "red"))),
        timeseries("Availability by provider / model", [influxql(f'SELECT mean("ok") FROM "probe" WHERE {where} {grp}', alias)],
                   unit="percentunit", ds=INFLUX, w=12, max=1),
        timeseries("TTFT p50 / p95 / p99", [pct("ttft", q) for q in (50, 95, 99)], ds=INFLUX, w=12),
        timeseries("End-to-end p50 / p95", [pct("e2e", q) for q in (50, 95)], ds=INFLUX, w=12),
        timeseries("Output tokens/s (median)", [influxql(f'SELECT median("output_tps") FROM "probe" WHERE {where} {grp}', alias)],
                   unit="short", ds=INFLUX, w=12),
        timeseries("Inter-token latency p95 (mean of per-probe p95)", [influxql(f'SELECT mean("itl_p95") FROM "probe" WHERE {where} {grp}', alias)],
                   ds=INFLUX, w=12),
        timeseries("Errors by outcome", [influxql(
            f'SELECT count("ok") FROM "probe" WHERE "outcome" != \'ok\' AND {where} GROUP BY time($__interval), "provider", "outcome" fill(none)',
            "$tag_provider: $tag_outcome")], unit="short", bars=True, stack=True, ds=INFLUX, w=12),
        table("Alert transitions", [influxql(
            'SELECT "summary", "value" FROM "alert" WHERE "provider" =~ /^$provider$/ AND $timeFilter GROUP BY "rule", "severity", "state" ORDER BY time DESC LIMIT 50',
            fmt="table")], ds=INFLUX, w=12, description="Measurement `alert`: the daemon's alert transitions (pending, firing, resolved)."),
        table("Recent failures", [influxql(
            f'SELECT "status_code", "error" FROM "probe" WHERE "outcome" != \'ok\' AND {where} GROUP BY "provider", "model", "outcome" ORDER BY time DESC LIMIT 20',
            fmt="table")], ds=INFLUX, w=12),
    ]
    return dashboard("llm-vitals-fleet-influxql", "LLM vitals / Fleet overview (InfluxDB)",
                     "The fleet overview from InfluxDB 1.x (InfluxQL): measurement probe, one point per probe.",
                     panels, variables)


DASHBOARDS = {
    "llm-vitals-fleet.json": fleet,
    "llm-vitals-provider.json": provider,
    "llm-vitals-regions.json": regions,
    "llm-vitals-self.json": self_health,
    "llm-vitals-fleet-influxql.json": fleet_influxql,
}


def render() -> dict[str, str]:
    return {name: json.dumps(build(), indent=2, ensure_ascii=False) + "\n" for name, build in DASHBOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a committed dashboard is out of date")
    args = ap.parse_args(argv)
    stale = []
    for name, content in render().items():
        path = OUT / name
        if args.check:
            if not path.exists() or path.read_text() != content:
                stale.append(name)
        else:
            OUT.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
    if stale:
        print(f"out of date (run python grafana/build.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
