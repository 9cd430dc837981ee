"""Every Prometheus metric of DESIGN §4, on a registry of our own (one per daemon).

Names and labels are a contract (Grafana dashboards, recording rules, runbooks): add,
never rename. Labels are bounded: target labels come from config, never from responses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from probes.result import Outcome, ProbeResult

TARGET = ("provider", "model", "probe", "region")

# LLM-scale buckets: 50 ms .. 2 min (TTFT of a reasoning model can be a minute).
LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0)
ITL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)
TPOT_BUCKETS = ITL_BUCKETS
TPS_BUCKETS = (1, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000)
PHASES = ("connect", "tls", "ttfb", "ttft", "generation")


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.ttft = Histogram("llm_canary_probe_ttft_seconds", "Time to first token (text or reasoning), from the start of the request.", TARGET, buckets=LATENCY_BUCKETS, registry=r)
        self.ttft_content = Histogram("llm_canary_probe_ttft_content_seconds", "Time to first visible text token (differs from ttft for reasoning models).", TARGET, buckets=LATENCY_BUCKETS, registry=r)
        self.e2e = Histogram("llm_canary_probe_e2e_seconds", "Time from the start of the request to the end of the stream.", TARGET, buckets=LATENCY_BUCKETS, registry=r)
        self.itl = Histogram("llm_canary_probe_itl_seconds", "Gaps between consecutive token-bearing chunks.", TARGET, buckets=ITL_BUCKETS, registry=r)
        self.tpot = Histogram("llm_canary_probe_tpot_seconds", "Time per output token after the first: (e2e - ttft) / (output_tokens - 1).", TARGET, buckets=TPOT_BUCKETS, registry=r)
        self.phase = Histogram("llm_canary_probe_phase_seconds", "Duration of each phase of a probe (connect, tls, ttfb, ttft, generation).", (*TARGET, "phase"), buckets=LATENCY_BUCKETS, registry=r)
        self.tps = Histogram("llm_canary_output_tokens_per_second", "Output tokens per second after the first token.", TARGET, buckets=TPS_BUCKETS, registry=r)
        self.probes = Counter("llm_canary_probes_total", "Probes by outcome.", (*TARGET, "outcome"), registry=r)
        self.success = Gauge("llm_canary_probe_success", "Whether the last probe succeeded (1) or not (0).", TARGET, registry=r)
        self.last_probe = Gauge("llm_canary_probe_last_timestamp_seconds", "Unix time the last probe of a target started.", TARGET, registry=r)
        self.tokens = Counter("llm_canary_tokens_total", "Tokens spent on probes.", (*TARGET, "direction"), registry=r)
        self.cost = Counter("llm_canary_probe_cost_usd_total", "Estimated probe cost in USD (config prices).", TARGET, registry=r)
        self.rate_limit_remaining = Gauge("llm_canary_rate_limit_remaining", "Provider-reported remaining rate limit (from response headers).", (*TARGET, "kind"), registry=r)
        self.anomaly = Gauge("llm_canary_anomaly_score", "Anomaly score of the latest probes against the baseline (>= 1 is anomalous).", (*TARGET, "metric"), registry=r)
        self.alerts_firing = Gauge("llm_canary_alerts_firing", "Alerts currently firing.", ("rule", "severity"), registry=r)
        self.notifications = Counter("llm_canary_notifications_total", "Notifications sent, by receiver and outcome.", ("receiver", "outcome"), registry=r)
        # self-monitoring
        self.scheduler_lag = Histogram("llm_canary_scheduler_lag_seconds", "Delay between a probe's scheduled and actual start.", buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=r)
        self.loop_lag = Gauge("llm_canary_event_loop_lag_seconds", "Event loop lag (how late a 100 ms timer fires).", registry=r)
        self.queue_depth = Gauge("llm_canary_queue_depth", "Items waiting in an internal queue.", ("queue",), registry=r)
        self.queue_dropped = Counter("llm_canary_queue_dropped_total", "Items dropped from a full internal queue (oldest first).", ("queue",), registry=r)
        self.sink_errors = Counter("llm_canary_sink_errors_total", "Errors writing to a sink.", ("sink",), registry=r)
        self.skipped = Counter("llm_canary_probes_skipped_total", "Scheduled probes not run, by reason.", (*TARGET, "reason"), registry=r)
        self.budget_paused = Gauge("llm_canary_budget_paused", "1 while probing is paused by a daily budget.", ("budget",), registry=r)
        self.in_flight = Gauge("llm_canary_probes_in_flight", "Probes currently running.", registry=r)
        self.targets = Gauge("llm_canary_targets", "Configured targets.", registry=r)
        self.config_reloads = Counter("llm_canary_config_reloads_total", "Config reloads by outcome.", ("outcome",), registry=r)
        self.sink_points = Counter("llm_canary_sink_points_total", "Points handled by a sink, by state (written, spooled, replayed, dropped, rejected).", ("sink", "state"), registry=r)
        self.sink_spool = Gauge("llm_canary_sink_spool_points", "Points waiting in a sink's durable spool.", ("sink",), registry=r)
        self.sink_write = Histogram("llm_canary_sink_write_seconds", "Duration of one batch write to a sink.", ("sink",), buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=r)
        self.build_info = Gauge("llm_canary_build_info", "Build information.", ("version",), registry=r)
        self.build_info.labels(version="0.1.0").set(1)
        # Pre-create outcome series so rate() works from the first scrape.
        self._outcomes = tuple(o.value for o in Outcome)

    def observe(self, r: ProbeResult, cost_usd: float | None = None) -> None:
        lv = (r.provider, r.model, r.probe, r.region)
        for o in self._outcomes:
            self.probes.labels(*lv, o)
        self.probes.labels(*lv, r.outcome.value).inc()
        self.success.labels(*lv).set(1 if r.ok else 0)
        self.last_probe.labels(*lv).set(r.started_at.timestamp())
        if r.output_tokens:
            self.tokens.labels(*lv, "output").inc(r.output_tokens)
        if r.input_tokens:
            self.tokens.labels(*lv, "input").inc(r.input_tokens)
        if cost_usd:
            self.cost.labels(*lv).inc(cost_usd)
        for kind, value in _remaining(r.rate_limit):
            self.rate_limit_remaining.labels(*lv, kind).set(value)
        if r.connect is not None:
            self.phase.labels(*lv, "connect").observe(r.connect)
        if r.tls is not None:
            self.phase.labels(*lv, "tls").observe(r.tls)
        if r.ttfb is not None:
            self.phase.labels(*lv, "ttfb").observe(r.ttfb)
        if not r.ok:
            return  # latency of failed probes would pollute the distributions
        if r.ttft is not None:
            self.ttft.labels(*lv).observe(r.ttft)
            self.phase.labels(*lv, "ttft").observe(r.ttft)
        if r.ttft_content is not None:
            self.ttft_content.labels(*lv).observe(r.ttft_content)
        if r.e2e is not None:
            self.e2e.labels(*lv).observe(r.e2e)
            if r.ttft is not None:
                self.phase.labels(*lv, "generation").observe(max(0.0, r.e2e - r.ttft))
        if r.tpot is not None:
            self.tpot.labels(*lv).observe(r.tpot)
        if r.output_tps is not None:
            self.tps.labels(*lv).observe(r.output_tps)
        if r.itls:
            h = self.itl.labels(*lv)
            for gap in r.itls:
                h.observe(gap)

    def forget(self, labels: dict[str, str]) -> None:
        """Remove a deleted target's series (reload), so dashboards don't show ghosts."""
        lv = (labels["provider"], labels["model"], labels["probe"], labels["region"])
        for m in (self.ttft, self.ttft_content, self.e2e, self.itl, self.tpot, self.tps, self.success, self.last_probe, self.cost):
            try:
                m.remove(*lv)
            except KeyError:
                pass
        for family, extra in ((self.probes, self._outcomes), (self.tokens, ("input", "output")), (self.phase, PHASES)):
            for e in extra:
                try:
                    family.remove(*lv, e)
                except KeyError:
                    pass


def _remaining(headers: dict[str, str]) -> Iterator[tuple[str, float]]:
    for k, v in headers.items():
        if "remaining" not in k:
            continue
        kind = k.removeprefix("x-ratelimit-remaining-").removeprefix("anthropic-ratelimit-")
        kind = kind.replace("-remaining", "")
        try:
            yield kind, float(v)
        except ValueError:
            continue


class QuantileCollector(Collector):
    """`llm_canary_latency_quantile_seconds{metric,quantile,window}` computed at scrape time.

    Exposed as a summary (the type that may carry a `quantile` label, so promtool's lint
    is clean); its _count and _sum cover the same sliding window, not all time.
    """

    NAME = "llm_canary_latency_quantile_seconds"

    def __init__(self, snapshot: Callable[[], list[Any]], labels_of: Callable[[str], dict[str, str] | None]) -> None:
        self._snapshot = snapshot
        self._labels_of = labels_of

    def collect(self) -> Iterator[Metric]:
        fam = Metric(self.NAME, "Latency quantiles over sliding windows (HDR), per metric "
                     "(output_tps in tokens/s); _count/_sum cover the window.", "summary")
        for target, metric, window, qs, summ in self._snapshot():
            lab = self._labels_of(target)
            if lab is None:
                continue
            base = {**{k: lab[k] for k in TARGET}, "metric": metric, "window": window}
            for q, v in qs.items():
                fam.add_sample(self.NAME, {**base, "quantile": f"{q:g}"}, v)
            fam.add_sample(self.NAME + "_count", base, float(summ.count))
            fam.add_sample(self.NAME + "_sum", base, summ.mean * summ.count)
        yield fam
