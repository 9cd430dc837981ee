"""Every Prometheus metric of docs/architecture.md §4, on a registry of our own (one per daemon).

Names and labels are a contract (Grafana dashboards, recording rules, runbooks): add,
never rename. Labels are bounded: target labels come from config, never from responses.
"""

from __future__ import annotations

import threading
import time
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import prometheus_client.metrics as _pm
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import INF

from core.result import Outcome, ProbeResult
from daemon.exposition import (
    CHUNK_LINES,
    created_section,
    escape_value,
    go_float,
    header,
    label_string,
)

TARGET = ("provider", "model", "probe", "region")

# LLM-scale buckets: 50 ms .. 2 min (TTFT of a reasoning model can be a minute).
LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0)
ITL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)
TPOT_BUCKETS = ITL_BUCKETS
TPS_BUCKETS = (1, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000)
PHASES = ("connect", "tls", "ttfb", "ttft", "generation")
# `metrics.detail: standard` keeps ttft and e2e histograms at 7 buckets (2.0 stays: the
# latency SLO recording rules read le="2.0"); with every other standard family at its
# worst case (5 detector metrics, all 7 skip reasons, a clamped usage report) a target
# stays at 50.
STANDARD_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 20.0)

# The series budget (README "Metrics and their cost"): which per-target families each
# `metrics.detail` level exports. Everything not per-target (self-monitoring) is always on.
DETAIL_LEVELS = ("minimal", "standard", "full")
FAMILY_LEVEL = {
    "probes": "minimal", "success": "minimal", "last_probe": "minimal", "last_phase": "minimal",
    "ttft": "standard", "e2e": "standard", "tokens": "standard", "cost": "standard", "anomaly": "standard",
    "skipped": "standard", "usage_clamped": "standard",
    "ttft_content": "full", "itl": "full", "tpot": "full", "phase": "full", "tps": "full",
    "rate_limit_remaining": "full", "quantiles": "full",
    # Per sweep (labelled by sweep, not by target, so they are not in a target's count):
    # 3 series per level and prompt size, plus 1 + 1 + 5 + the outcomes seen per sweep.
    "sweep_ttft_p50": "standard", "sweep_ttft_p95": "standard", "sweep_aggregate_tps": "standard",
    "sweep_saturation": "minimal", "sweep_last": "minimal", "sweep_last_outcome": "minimal", "sweeps": "minimal",
}
SWEEP = ("sweep", "target")
SWEEP_LEVEL = (*SWEEP, "concurrency", "prompt_tokens")
SWEEP_OUTCOMES = ("ok", "partial", "failed", "cancelled", "refused")


def exported(family: str, detail: str) -> bool:
    return DETAIL_LEVELS.index(FAMILY_LEVEL[family]) <= DETAIL_LEVELS.index(detail)


Key = tuple[str, ...]


def _use_created() -> bool:
    """Follow prometheus_client's switch (PROMETHEUS_DISABLE_CREATED_SERIES / disable_created_metrics)."""
    return bool(getattr(_pm, "_use_created", True))


class _Family(Collector):
    """A labelled metric family stored compactly and exported through a custom collector.

    prometheus_client's own label children cost a lock plus one value object (and its lock)
    per bucket; at 1,000+ targets that is hundreds of thousands of GC-tracked objects. Here a
    family is one dict {label tuple -> row} and one lock; rows are `array('d')` (not tracked
    by the GC) or plain floats. Exposition (names, types, HELP, label order, series order,
    values, `_created`) is the one prometheus_client produces for the same observations.
    """

    _type = "untyped"  # _name/_labelnames/_type mirror prometheus_client's wrappers (introspected by tests)

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self._name = name.removesuffix("_total") if self._type == "counter" else name
        self._doc = documentation
        self._labelnames = tuple(labelnames)
        self._lock = threading.Lock()
        self._labcache: dict[Key, str] = {}

    def _labelstr(self, key: Key) -> str:
        """`{a="1",b="2"}` for a row, names sorted as generate_latest writes them (cached)."""
        lab = self._labcache.get(key)
        if lab is None:
            lab = self._labcache[key] = label_string(zip(self._labelnames, key, strict=True))
        return lab

    def _key(self, values: tuple[Any, ...], kw: dict[str, Any]) -> Key:
        if values and kw:
            raise ValueError("Can't pass both *args and **kwargs")
        if kw:
            if sorted(kw) != sorted(self._labelnames):
                raise ValueError("Incorrect label names")
            return tuple(str(kw[n]) for n in self._labelnames)
        if len(values) != len(self._labelnames):
            raise ValueError("Incorrect label count")
        return tuple(str(v) for v in values)

    _series: dict[Key, Any]

    def _discard(self, key: Key) -> None:
        with self._lock:
            self._series.pop(key, None)

    def remove(self, *values: Any) -> None:
        """Like prometheus_client's `remove` (a missing series is not an error here)."""
        self.discard(tuple(str(v) for v in values))

    def discard(self, key: Key) -> None:
        self._discard(key)
        self._labcache.pop(key, None)

    def discard_prefix(self, prefix: Key) -> None:
        """Every series whose leading label values are `prefix` (one target's, whatever
        its extra labels: rate-limit kinds, detector metrics, skip reasons)."""
        n = len(prefix)
        with self._lock:
            keys = [k for k in self._series if k[:n] == prefix]
        for k in keys:
            self.discard(k)


class _Child:
    """What `family.labels(...)` returns: a handle, not storage (prometheus_client's API)."""

    __slots__ = ("_family", "_key")

    def __init__(self, family: Any, key: Key) -> None:
        self._family = family
        self._key = key

    def inc(self, amount: float = 1) -> None:
        self._family.inc_key(self._key, amount)

    def set(self, value: float) -> None:
        self._family.set_key(self._key, value)

    def observe(self, amount: float) -> None:
        self._family.observe_key(self._key, amount)


class CompactHistogram(_Family):
    """Histogram family: row = per-bucket counts (non-cumulative) + sum + created, cumulated at collect."""

    _type = "histogram"

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float],
                 registry: CollectorRegistry) -> None:
        super().__init__(name, documentation, labelnames)
        bounds = [float(b) for b in buckets]
        if bounds != sorted(bounds):
            raise ValueError("Buckets not in sorted order")
        if bounds[-1] != INF:
            bounds.append(INF)
        self._bounds = tuple(bounds)
        self._les = tuple(go_float(float(b)) for b in bounds)
        self._n = len(bounds)
        self._zero = array("d", bytes(8 * (self._n + 2)))
        self._series: dict[Key, array[float]] = {}
        self._text_cache: dict[Key, tuple[list[str], str, str, str]] = {}
        registry.register(self)

    def _row(self, key: Key) -> array[float]:
        row = self._series.get(key)
        if row is None:
            new = array("d", self._zero)
            new[-1] = time.time()
            with self._lock:
                row = self._series.setdefault(key, new)
        return row

    def labels(self, *values: Any, **kw: Any) -> _Child:
        key = self._key(values, kw)
        self._row(key)
        return _Child(self, key)

    def observe_key(self, key: Key, amount: float) -> None:
        row = self._series.get(key)
        if row is None:
            row = self._row(key)
        with self._lock:
            if amount <= INF:  # NaN goes into no bucket (like prometheus_client), only into the sum
                row[bisect_left(self._bounds, amount)] += 1.0
            row[self._n] += amount

    def observe_many(self, key: Key, amounts: Iterable[float]) -> None:
        """Observe each amount in order (the sum is accumulated exactly as one-by-one would)."""
        row = self._series.get(key)
        if row is None:
            row = self._row(key)
        bounds, n, bl = self._bounds, self._n, bisect_left
        with self._lock:
            s = row[n]
            for a in amounts:
                if a <= INF:
                    row[bl(bounds, a)] += 1.0
                s += a
            row[n] = s

    def _discard(self, key: Key) -> None:
        with self._lock:
            self._series.pop(key, None)
            self._text_cache.pop(key, None)

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self._name, self._doc, labels=self._labelnames)

    def text(self) -> str:
        """This family's exposition, exactly as generate_latest writes collect()'s output
        (daemon/exposition.py): lines straight from the rows, no sample objects."""
        return "".join(self.text_chunks())

    def text_chunks(self) -> Iterator[str]:
        """text() in pieces: the header, then a few hundred rows at a time (each row read
        whole: observations land between pieces, never inside a row)."""
        with self._lock:
            rows = list(self._series.items())
        name, n, les = self._name, self._n, self._les
        names = self._labelnames
        # generate_latest sorts label names: find where `le` falls among ours
        order = sorted((*names, "le"))
        le_at = order.index("le")
        yield header(name, self._doc, "histogram")
        created: list[str] = []
        want_created = _use_created()  # else formatting them was a tenth of a scrape's CPU
        cache = self._text_cache
        per = max(1, CHUNK_LINES // (n + 2))
        for start in range(0, len(rows), per):
            with self._lock:
                snap = [(k, r.tolist()) for k, r in rows[start:start + per]]
            out: list[str] = []
            for key, vals in snap:
                parts = cache.get(key)
                if parts is None:
                    pairs = sorted(zip(names, key, strict=True))
                    labs = [f'{k}="{escape_value(v)}"' for k, v in pairs]
                    before, after = ",".join(labs[:le_at]), ",".join(labs[le_at:])
                    bucket = [f"{name}_bucket{{{before}{',' if before else ''}le=\"{le}\"{',' if after else ''}{after}}} "
                              for le in les]
                    plain = "{" + ",".join(labs) + "}" if labs else ""
                    parts = cache[key] = (bucket, f"{name}_count{plain} ", f"{name}_sum{plain} ", f"{name}_created{plain} ")
                bucket, count, total, made = parts
                acc = 0.0
                for i in range(n):
                    acc += vals[i]
                    out.append(f"{bucket[i]}{go_float(acc)}\n")
                out.append(f"{count}{go_float(acc)}\n")
                out.append(f"{total}{go_float(vals[n])}\n")
                if want_created:
                    created.append(f"{made}{go_float(vals[n + 1])}\n")
            yield "".join(out)
        if want_created:
            yield created_section(name, self._doc, created)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            snap = [(k, r.tolist()) for k, r in self._series.items()]
        fam = HistogramMetricFamily(self._name, self._doc, labels=self._labelnames)
        created, les, n, names, cname = _use_created(), self._les, self._n, self._labelnames, self._name + "_created"
        for key, vals in snap:
            acc = 0.0
            buckets: list[tuple[str, float]] = []
            for i in range(n):
                acc += vals[i]
                buckets.append((les[i], acc))
            fam.add_metric(key, buckets, vals[n])
            if created:
                fam.add_sample(cname, dict(zip(names, key, strict=True)), vals[n + 1])
        yield fam


class CompactCounter(_Family):
    """Counter family: row = array('d', [value, created])."""

    _type = "counter"

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry) -> None:
        super().__init__(name, documentation, labelnames)
        self._series: dict[Key, array[float]] = {}
        registry.register(self)

    def ensure(self, key: Key) -> array[float]:
        row = self._series.get(key)
        if row is None:
            new = array("d", (0.0, time.time()))
            with self._lock:
                row = self._series.setdefault(key, new)
        return row

    def labels(self, *values: Any, **kw: Any) -> _Child:
        key = self._key(values, kw)
        self.ensure(key)
        return _Child(self, key)

    def inc_key(self, key: Key, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        row = self._series.get(key)
        if row is None:
            row = self.ensure(key)
        with self._lock:
            row[0] += amount

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self._name, self._doc, labels=self._labelnames)

    def text(self) -> str:
        """Exactly what generate_latest writes for collect() (daemon/exposition.py), faster."""
        return "".join(self.text_chunks())

    def text_chunks(self) -> Iterator[str]:
        with self._lock:
            rows = list(self._series.items())
        name = self._name
        yield header(name + "_total", self._doc, "counter")
        created = []
        want_created = _use_created()
        for start in range(0, len(rows), CHUNK_LINES):
            with self._lock:
                snap = [(k, r[0], r[1]) for k, r in rows[start:start + CHUNK_LINES]]
            out = []
            for key, value, ts in snap:
                lab = self._labelstr(key)
                out.append(f"{name}_total{lab} {go_float(value)}\n")
                if want_created:
                    created.append(f"{name}_created{lab} {go_float(ts)}\n")
            yield "".join(out)
        if want_created:
            yield created_section(name, self._doc, created)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            snap = [(k, r[0], r[1]) for k, r in self._series.items()]
        fam = CounterMetricFamily(self._name, self._doc, labels=self._labelnames)
        created = _use_created()
        for key, value, ts in snap:
            fam.add_metric(key, value, created=ts if created else None)
        yield fam


class CompactGauge(_Family):
    """Gauge family: {label tuple -> float}."""

    _type = "gauge"

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry) -> None:
        super().__init__(name, documentation, labelnames)
        self._series: dict[Key, float] = {}
        registry.register(self)

    def labels(self, *values: Any, **kw: Any) -> _Child:
        key = self._key(values, kw)
        with self._lock:
            self._series.setdefault(key, 0.0)
        return _Child(self, key)

    def set_key(self, key: Key, value: float) -> None:
        value = float(value)
        with self._lock:
            self._series[key] = value

    def inc_key(self, key: Key, amount: float = 1) -> None:
        with self._lock:
            self._series[key] = self._series.get(key, 0.0) + amount

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(self._name, self._doc, labels=self._labelnames)

    def text(self) -> str:
        """Exactly what generate_latest writes for collect() (daemon/exposition.py), faster."""
        return "".join(self.text_chunks())

    def text_chunks(self) -> Iterator[str]:
        with self._lock:
            snap = list(self._series.items())
        name, lab = self._name, self._labelstr
        yield header(name, self._doc, "gauge")
        for start in range(0, len(snap), CHUNK_LINES):
            yield "".join(f"{name}{lab(key)} {go_float(value)}\n" for key, value in snap[start:start + CHUNK_LINES])

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            snap = list(self._series.items())
        fam = GaugeMetricFamily(self._name, self._doc, labels=self._labelnames)
        for key, value in snap:
            fam.add_metric(key, value)
        yield fam


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None, detail: str = "standard") -> None:
        if detail not in DETAIL_LEVELS:
            raise ValueError(f"unknown metrics detail {detail!r} (known: {', '.join(DETAIL_LEVELS)})")
        self.detail = detail
        self.registry = r = registry or CollectorRegistry()
        # A family this level does not export lives on a registry nobody scrapes, and
        # observe() skips it: callers can keep using every attribute.
        off = CollectorRegistry(auto_describe=False)

        def reg(family: str) -> CollectorRegistry:
            return self.registry if exported(family, detail) else off

        self._on = {f: exported(f, detail) for f in FAMILY_LEVEL}
        lat = LATENCY_BUCKETS if detail == "full" else STANDARD_LATENCY_BUCKETS
        # Per-target families are compact (see _Family); registration order = exposition order.
        self.ttft = CompactHistogram("llm_vitals_probe_ttft_seconds", "Time to first token (text or reasoning), from the start of the request.", TARGET, lat, reg("ttft"))
        self.ttft_content = CompactHistogram("llm_vitals_probe_ttft_content_seconds", "Time to first visible text token (differs from ttft for reasoning models).", TARGET, LATENCY_BUCKETS, reg("ttft_content"))
        self.e2e = CompactHistogram("llm_vitals_probe_e2e_seconds", "Time from the start of the request to the end of the stream.", TARGET, lat, reg("e2e"))
        self.itl = CompactHistogram("llm_vitals_probe_itl_seconds", "Gaps between consecutive token-bearing chunks.", TARGET, ITL_BUCKETS, reg("itl"))
        self.tpot = CompactHistogram("llm_vitals_probe_tpot_seconds", "Time per output token after the first: (e2e - ttft) / (output_tokens - 1).", TARGET, TPOT_BUCKETS, reg("tpot"))
        self.phase = CompactHistogram("llm_vitals_probe_phase_seconds", "Duration of each phase of a probe (connect, tls, ttfb, ttft, generation).", (*TARGET, "phase"), LATENCY_BUCKETS, reg("phase"))
        self.tps = CompactHistogram("llm_vitals_output_tokens_per_second", "Output tokens per second after the first token.", TARGET, TPS_BUCKETS, reg("tps"))
        self.probes = CompactCounter("llm_vitals_probes_total", "Probes by outcome.", (*TARGET, "outcome"), reg("probes"))
        self.success = CompactGauge("llm_vitals_probe_success", "Whether the last probe succeeded (1) or not (0).", TARGET, reg("success"))
        self.last_probe = CompactGauge("llm_vitals_probe_last_timestamp_seconds", "Unix time the last probe of a target started.", TARGET, reg("last_probe"))
        self.last_phase = CompactGauge("llm_vitals_probe_last_phase_seconds", "Duration of each phase of the last probe (connect, tls, ttfb, ttft, generation); a phase the probe did not reach is absent.", (*TARGET, "phase"), reg("last_phase"))
        self.tokens = CompactCounter("llm_vitals_tokens_total", "Tokens spent on probes.", (*TARGET, "direction"), reg("tokens"))
        self.cost = CompactCounter("llm_vitals_probe_cost_usd_total", "Estimated probe cost in USD (config prices).", TARGET, reg("cost"))
        self.rate_limit_remaining = CompactGauge("llm_vitals_rate_limit_remaining", "Provider-reported remaining rate limit (from response headers).", (*TARGET, "kind"), reg("rate_limit_remaining"))
        self.anomaly = CompactGauge("llm_vitals_anomaly_score", "Anomaly score of the latest probes against the baseline (>= 1 is anomalous).", (*TARGET, "metric"), reg("anomaly"))
        self.alerts_firing = Gauge("llm_vitals_alerts_firing", "Alerts currently firing.", ("rule", "severity"), registry=r)
        self.notifications = Counter("llm_vitals_notifications_total", "Notifications sent, by receiver and outcome.", ("receiver", "outcome"), registry=r)
        # self-monitoring
        self.scheduler_lag = Histogram("llm_vitals_scheduler_lag_seconds", "Delay between a probe's scheduled and actual start.", buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=r)
        self.loop_lag = Gauge("llm_vitals_event_loop_lag_seconds", "Event loop lag (how late a 100 ms timer fires).", registry=r)
        self.queue_depth = Gauge("llm_vitals_queue_depth", "Items waiting in an internal queue.", ("queue",), registry=r)
        self.queue_dropped = Counter("llm_vitals_queue_dropped_total", "Items dropped from a full internal queue (oldest first).", ("queue",), registry=r)
        self.sink_errors = Counter("llm_vitals_sink_errors_total", "Errors writing to a sink.", ("sink",), registry=r)
        self.skipped = CompactCounter("llm_vitals_probes_skipped_total", "Scheduled probes not run, by reason.", (*TARGET, "reason"), reg("skipped"))
        self.budget_paused = Gauge("llm_vitals_budget_paused", "1 while probing is paused by a daily budget.", ("budget",), registry=r)
        self.provider_budget_paused = Gauge("llm_vitals_provider_budget_paused", "1 while a provider's probing is paused by its own daily budget.", ("provider", "budget"), registry=r)
        self.usage_clamped = CompactCounter("llm_vitals_usage_clamped_total", "Probes whose usage report was impossible (negative, or more than the request allowed) and was bounded.", TARGET, reg("usage_clamped"))
        self.in_flight = Gauge("llm_vitals_probes_in_flight", "Probes currently running.", registry=r)
        self.targets = Gauge("llm_vitals_targets", "Configured targets.", registry=r)
        self.config_reloads = Counter("llm_vitals_config_reloads_total", "Config reloads by outcome.", ("outcome",), registry=r)
        self.sink_points = Counter("llm_vitals_sink_points_total", "Points handled by a sink, by state (written, spooled, replayed, dropped, rejected).", ("sink", "state"), registry=r)
        self.sink_spool = Gauge("llm_vitals_sink_spool_points", "Points waiting in a sink's durable spool.", ("sink",), registry=r)
        self.sink_write = Histogram("llm_vitals_sink_write_seconds", "Duration of one batch write to a sink.", ("sink",), buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=r)
        self.sweep_ttft_p50 = Gauge("llm_vitals_sweep_ttft_p50_seconds", "Capacity sweep: ttft p50 at each level of the sweep's last run (prompt_tokens `default`: the probe's own prompt).", SWEEP_LEVEL, registry=reg("sweep_ttft_p50"))
        self.sweep_ttft_p95 = Gauge("llm_vitals_sweep_ttft_p95_seconds", "Capacity sweep: ttft p95 at each level of the sweep's last run.", SWEEP_LEVEL, registry=reg("sweep_ttft_p95"))
        self.sweep_aggregate_tps = Gauge("llm_vitals_sweep_aggregate_output_tokens_per_second", "Capacity sweep: output tokens per second of all streams together at each level of the last run.", SWEEP_LEVEL, registry=reg("sweep_aggregate_tps"))
        self.sweep_saturation = Gauge("llm_vitals_sweep_saturation_concurrency", "Capacity sweep: the first level of the last run where the target saturates (+Inf: none of the levels swept).", SWEEP, registry=reg("sweep_saturation"))
        self.sweep_last = Gauge("llm_vitals_sweep_last_timestamp_seconds", "Capacity sweep: unix time the sweep's last run started.", SWEEP, registry=reg("sweep_last"))
        self.sweep_last_outcome = Gauge("llm_vitals_sweep_last_outcome", "Capacity sweep: 1 for the outcome of the last run (ok, partial, failed, cancelled, refused), 0 for the others.", (*SWEEP, "outcome"), registry=reg("sweep_last_outcome"))
        self.sweeps = Counter("llm_vitals_sweeps_total", "Scheduled sweep runs by outcome (ok, partial, failed, cancelled, refused, skipped_overlap, skipped_late).", ("sweep", "outcome"), registry=reg("sweeps"))
        self.sweep_running = Gauge("llm_vitals_sweep_running", "1 while a scheduled sweep runs (its streams load the target the regular probes measure).", registry=r)
        self.build_info = Gauge("llm_vitals_build_info", "Build information.", ("version",), registry=r)
        self.build_info.labels(version="0.1.0").set(1)
        # Pre-create outcome series so rate() works from the first scrape.
        self._outcomes = tuple(o.value for o in Outcome)

    def observe(self, r: ProbeResult, cost_usd: float | None = None) -> None:
        lv: Key = (r.provider, r.model, r.probe, r.region)
        probes = self.probes
        for o in self._outcomes:
            probes.ensure((*lv, o))
        probes.inc_key((*lv, r.outcome.value))
        self.success.set_key(lv, 1 if r.ok else 0)
        self.last_probe.set_key(lv, r.started_at.timestamp())
        on = self._on
        if on["tokens"]:
            if r.output_tokens:
                self.tokens.inc_key((*lv, "output"), r.output_tokens)
            if r.input_tokens:
                self.tokens.inc_key((*lv, "input"), r.input_tokens)
        if cost_usd and on["cost"]:
            self.cost.inc_key(lv, cost_usd)
        if r.usage_clamped and on["usage_clamped"]:
            self.usage_clamped.inc_key(lv)
        if on["rate_limit_remaining"]:
            for kind, value in _remaining(r.rate_limit):
                self.rate_limit_remaining.set_key((*lv, kind), value)
        phases = phases_of(r)
        last = self.last_phase
        for name, value in phases.items():
            last.set_key((*lv, name), value)
        for name in PHASES:
            if name not in phases:
                last.discard((*lv, name))
        if not r.ok:
            if on["phase"]:  # the phases a failed probe reached (its ttft would pollute the distribution)
                for name in ("connect", "tls", "ttfb"):
                    if name in phases:
                        self.phase.observe_key((*lv, name), phases[name])
            return  # latency of failed probes would pollute the distributions
        if on["phase"]:
            for name, value in phases.items():
                self.phase.observe_key((*lv, name), value)
        if r.ttft is not None:
            self.ttft.observe_key(lv, r.ttft)
        if r.e2e is not None:
            self.e2e.observe_key(lv, r.e2e)
        if self.detail != "full":  # the rest is `full` only
            return
        if r.ttft_content is not None:
            self.ttft_content.observe_key(lv, r.ttft_content)
        if r.tpot is not None:
            self.tpot.observe_key(lv, r.tpot)
        if r.output_tps is not None:
            self.tps.observe_key(lv, r.output_tps)
        if r.itls:
            self.itl.observe_many(lv, r.itls)

    def sweep_done(self, name: str, target: str, started_at: float, outcome: str,
                   levels: Sequence[dict[str, Any]], saturation: dict[str, Any] | None) -> None:
        """A sweep run's result: its levels replace the previous run's (a level no longer
        swept leaves no stale series), outcome and time are set, the run is counted. A refused
        run measured nothing: the previous run's levels and knee stand."""
        if outcome != "refused":
            self._forget_levels(name)
        for lv in levels:
            key = (name, target, str(lv["concurrency"]),
                   "default" if lv["prompt_tokens"] is None else str(lv["prompt_tokens"]))
            for gauge, field in ((self.sweep_ttft_p50, "ttft_p50"), (self.sweep_ttft_p95, "ttft_p95"),
                                 (self.sweep_aggregate_tps, "aggregate_output_tps")):
                if lv.get(field) is not None:
                    gauge.labels(*key).set(lv[field])
        if outcome != "refused":
            self.sweep_saturation.labels(name, target).set(INF if saturation is None else saturation["concurrency"])
        self.sweep_last.labels(name, target).set(started_at)
        for o in SWEEP_OUTCOMES:
            self.sweep_last_outcome.labels(name, target, o).set(1 if o == outcome else 0)
        self.sweeps.labels(name, outcome).inc()

    def _forget_levels(self, name: str) -> None:
        for gauge in (self.sweep_ttft_p50, self.sweep_ttft_p95, self.sweep_aggregate_tps):
            for key in [k for k in list(gauge._metrics) if k[0] == name]:
                gauge.remove(*key)

    def forget_sweep(self, name: str) -> None:
        """A sweep removed from the config (reload): its series go."""
        self._forget_levels(name)
        for gauge in (self.sweep_saturation, self.sweep_last, self.sweep_last_outcome, self.sweeps):
            for key in [k for k in list(gauge._metrics) if k[0] == name]:
                gauge.remove(*key)

    def forget(self, labels: dict[str, str]) -> None:
        """Remove a deleted target's series (reload), so dashboards don't show ghosts."""
        lv: Key = (labels["provider"], labels["model"], labels["probe"], labels["region"])
        fams: tuple[_Family, ...] = (self.ttft, self.ttft_content, self.e2e, self.itl, self.tpot, self.tps,
                                     self.success, self.last_probe, self.cost, self.usage_clamped)
        for m in fams:
            m.discard(lv)
        extras: tuple[tuple[_Family, tuple[str, ...]], ...] = (
            (self.probes, self._outcomes), (self.tokens, ("input", "output")), (self.phase, PHASES),
            (self.last_phase, PHASES))
        for family, extra in extras:
            for e in extra:
                family.discard((*lv, e))
        for family in (self.rate_limit_remaining, self.anomaly, self.skipped):
            family.discard_prefix(lv)


def phases_of(r: ProbeResult) -> dict[str, float]:
    """The phases a probe reached: connect, tls, ttfb, and for a success ttft and generation."""
    out: dict[str, float] = {}
    if r.connect is not None:
        out["connect"] = r.connect
    if r.tls is not None:
        out["tls"] = r.tls
    if r.ttfb is not None:
        out["ttfb"] = r.ttfb
    if r.ok and r.ttft is not None:
        out["ttft"] = r.ttft
        if r.e2e is not None:
            out["generation"] = max(0.0, r.e2e - r.ttft)
    return out


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
    """`llm_vitals_latency_quantile_seconds{metric,quantile,window}` computed at scrape time.

    Exposed as a summary (the type that may carry a `quantile` label, so promtool's lint
    is clean); its _count and _sum cover the same sliding window, not all time.
    """

    NAME = "llm_vitals_latency_quantile_seconds"

    def __init__(self, snapshot: Callable[[], Iterable[Any]], labels_of: Callable[[str], dict[str, str] | None]) -> None:
        self._snapshot = snapshot
        self._labels_of = labels_of
        self._labcache: dict[tuple[str, ...], tuple[str, str]] = {}

    DOC = "Latency quantiles over sliding windows (HDR), per metric (output_tps in tokens/s); _count/_sum cover the window."

    def text(self) -> str:
        return "".join(self.text_chunks())

    def text_chunks(self) -> Iterator[str]:
        """Exactly what generate_latest writes for collect() (daemon/exposition.py), faster:
        generate_latest sorts label names, and ours are fixed, so the order is known:
        metric, model, probe, provider, quantile, region, window. The snapshot is read
        lazily when it is an iterator (the aggregator's: a series at a time)."""
        assert TARGET == ("provider", "model", "probe", "region")
        name, cache = self.NAME, self._labcache
        yield header(name, self.DOC, "summary")
        out: list[str] = []
        lines = 0
        for target, metric, window, qs, summ in self._snapshot():
            lab = self._labels_of(target)
            if lab is None:
                continue
            vals = (lab["provider"], lab["model"], lab["probe"], lab["region"])
            parts = cache.get(vals)
            if parts is None:
                p, m, pr, r = (escape_value(v) for v in vals)
                parts = cache[vals] = (f'model="{m}",probe="{pr}",provider="{p}"', f'region="{r}"')
            mpp, reg = parts
            me, we = escape_value(metric), escape_value(window)
            for q, v in qs.items():
                out.append(f'{name}{{metric="{me}",{mpp},quantile="{q:g}",{reg},window="{we}"}} {go_float(v)}\n')
            plain = f'{{metric="{me}",{mpp},{reg},window="{we}"}}'
            out.append(f"{name}_count{plain} {go_float(float(summ.count))}\n")
            out.append(f"{name}_sum{plain} {go_float(summ.mean * summ.count)}\n")
            if len(out) >= CHUNK_LINES:
                lines += len(out)
                yield "".join(out)
                out = []
        lines += len(out)
        if out:
            yield "".join(out)
        if len(cache) > 4 * max(1, lines):
            cache.clear()  # targets come and go with reloads: keep the cache bounded

    def collect(self) -> Iterator[Metric]:
        fam = Metric(self.NAME, self.DOC, "summary")
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
