"""Probe results pushed over OTLP/HTTP: GenAI client metrics, and (opt-in) one span per probe.

Follows the OpenTelemetry GenAI semantic conventions as of semantic-conventions v1.37
(`gen_ai.provider.name`): the four client metrics with their units and recommended bucket
boundaries, attributes `gen_ai.operation.name`, `gen_ai.provider.name`,
`gen_ai.request.model`, `gen_ai.response.model`, `server.address`, `server.port`,
`error.type`, and spans named `chat {model}`. `OTEL_SEMCONV_STABILITY_OPT_IN` as the
conventions ask: by default the pre-1.37 `gen_ai.system` is sent beside
`gen_ai.provider.name` (dashboards built on either keep working);
`gen_ai_latest_experimental` sends only the latest names.
Our own extras carry the `llm_vitals.` prefix.

The OpenTelemetry SDK does the work (aggregation, protobuf, HTTP, retries); its exporters
run in the SDK's own threads, so a slow or dead collector never touches the event loop:
`observe` only records into in-memory instruments (cumulative state, one data point set per
target: bounded) or queues a finished span (bounded queue, counted when full).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import urlsplit

import structlog
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExportResult, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.re import parse_env_headers

from alerts.model import AlertTransition
from core.result import Outcome, ProbeResult
from daemon.metrics import Metrics, phases_of

log = structlog.get_logger("llm_vitals.otlp")

SEMCONV_VERSION = "1.37.0"
OPT_IN_LATEST = "gen_ai_latest_experimental"

# Recommended bucket boundaries of the GenAI client metrics.
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
CHUNK_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)

# `kind` -> the conventions' well-known gen_ai.provider.name; kinds that front many
# providers (openai_compatible) use the configured provider name.
PROVIDER_NAMES = {
    "openai": "openai",
    "openai_responses": "openai",
    "azure_openai": "azure.ai.openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "bedrock": "aws.bedrock",
    "openrouter": "openrouter",
    "ollama": "ollama",
}


def latest_only(env: Mapping[str, str] = os.environ) -> bool:
    values = {v.strip() for v in env.get("OTEL_SEMCONV_STABILITY_OPT_IN", "").split(",")}
    return OPT_IN_LATEST in values


class _Provider:
    """What the conventions need about a configured provider: its name and server."""

    __slots__ = ("address", "name", "port")

    def __init__(self, kind: str, name: str, base_url: str) -> None:
        self.name = PROVIDER_NAMES.get(kind, name)
        parts = urlsplit(base_url if "://" in base_url else f"http://{base_url}")
        self.address = parts.hostname or ""
        try:
            self.port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            self.port = 0


class _Health:
    """Export outcomes from the SDK's threads: counted, logged once per change of state."""

    def __init__(self, metrics: Metrics, sink: str) -> None:
        self._metrics = metrics
        self._sink = sink
        self._lock = threading.Lock()
        self.failing: dict[str, bool] = {"metrics": False, "traces": False}
        self.failures = 0
        # Spans ended vs taken by the exporter: their difference is the SDK's queue, which
        # drops its oldest span when full without telling anyone but its log.
        self.spans_ended = 0
        self.spans_taken = 0
        self.spans_dropped = 0

    def span_ended(self, max_queued: int) -> None:
        with self._lock:
            if self.spans_ended - self.spans_taken >= max_queued:
                self.spans_taken += 1  # the oldest queued span leaves without an export
                self.spans_dropped += 1
                dropped = True
            else:
                dropped = False
            self.spans_ended += 1
        if dropped:
            self._metrics.sink_points.labels(self._sink, "dropped").inc()

    def spans_exporting(self, n: int) -> None:
        with self._lock:
            self.spans_taken += n

    def report(self, signal: str, ok: bool, items: int) -> None:
        with self._lock:
            was = self.failing[signal]
            self.failing[signal] = not ok
            if not ok:
                self.failures += 1
        state = "written" if ok else "dropped"
        self._metrics.sink_points.labels(self._sink, state).inc(items)
        if not ok:
            self._metrics.sink_errors.labels(self._sink).inc()
        if was and ok:
            log.info("otlp_export_recovered", signal=signal)
        elif not was and not ok:
            log.warning("otlp_export_failing", signal=signal, dropped=items)


class _MetricExporter(OTLPMetricExporter):
    def __init__(self, health: _Health, **kw: Any) -> None:
        super().__init__(**kw)
        self._health = health

    def export(self, metrics_data: Any, timeout_millis: float | None = 10000, **kwargs: Any) -> MetricExportResult:
        result = super().export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        points = sum(len(m.data.data_points) for rm in metrics_data.resource_metrics
                     for sm in rm.scope_metrics for m in sm.metrics)
        self._health.report("metrics", result is MetricExportResult.SUCCESS, points)
        return result


class _SpanExporter(OTLPSpanExporter):
    def __init__(self, health: _Health, **kw: Any) -> None:
        super().__init__(**kw)
        self._health = health

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self._health.spans_exporting(len(spans))
        result = super().export(spans)
        self._health.report("traces", result is SpanExportResult.SUCCESS, len(spans))
        return result


def error_type(r: ProbeResult) -> str | None:
    """Low-cardinality `error.type`: the HTTP status for HTTP failures, else the outcome."""
    if r.ok:
        return None
    if r.outcome in (Outcome.HTTP_ERROR, Outcome.RATE_LIMITED) and r.status_code:
        return str(r.status_code)
    return r.outcome.value


class OtlpSink:
    name = "otlp"

    def __init__(self, cfg: Any, providers: Mapping[str, tuple[str, str]], metrics: Metrics, region: str,
                 headers: Mapping[str, str] | None = None) -> None:
        """`providers`: config name -> (kind, base_url); `headers`: already-resolved secret headers."""
        self._metrics = metrics
        self._providers = {n: _Provider(kind, n, url) for n, (kind, url) in providers.items()}
        self._latest_only = latest_only()
        self._health = _Health(metrics, self.name)
        # The SDK logs every failed export and retry; _Health logs once per change of state.
        logging.getLogger("opentelemetry.exporter.otlp").setLevel(logging.CRITICAL)
        logging.getLogger("opentelemetry.sdk._shared_internal").setLevel(logging.ERROR)
        try:
            ver = version("llm-vitals")
        except PackageNotFoundError:
            ver = "0+unknown"
        resource = Resource.create({"service.name": cfg.service_name, "service.version": ver,
                                    "llm_vitals.region": region})
        base = cfg.endpoint.rstrip("/") if cfg.endpoint else None
        common: dict[str, Any] = {"timeout": cfg.timeout}
        if headers:
            common["headers"] = dict(headers)
        exporter = _MetricExporter(self._health, endpoint=f"{base}/v1/metrics" if base else None, **common)
        self._reader = PeriodicExportingMetricReader(exporter, export_interval_millis=cfg.interval * 1000,
                                                     export_timeout_millis=cfg.timeout * 1000)
        self._meters = MeterProvider(resource=resource, metric_readers=[self._reader])
        meter = self._meters.get_meter("llm_vitals", ver, schema_url=f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}")
        def histogram(name: str, unit: str, description: str, buckets: tuple[float, ...]) -> Any:
            return meter.create_histogram(name, unit=unit, description=description,
                                          explicit_bucket_boundaries_advisory=buckets)

        self._duration = histogram("gen_ai.client.operation.duration", "s", "GenAI operation duration.",
                                   DURATION_BUCKETS)
        self._ttfc = histogram("gen_ai.client.operation.time_to_first_chunk", "s",
                               "Time to receive the first chunk of the response stream.", DURATION_BUCKETS)
        self._tpoc = histogram("gen_ai.client.operation.time_per_output_chunk", "s",
                               "Time per output chunk after the first one.", CHUNK_BUCKETS)
        self._tokens = histogram("gen_ai.client.token.usage", "{token}", "Number of input and output tokens used.",
                                 TOKEN_BUCKETS)
        self._phase = histogram("llm_vitals.probe.phase.duration", "s", "Duration of each phase of a probe.",
                                DURATION_BUCKETS)
        self._probes = meter.create_counter("llm_vitals.probes", unit="{probe}", description="Probes by outcome.")
        self._tracer_provider: TracerProvider | None = None
        self._spans: BatchSpanProcessor | None = None
        self._tracer: Any = None
        self._max_queued = cfg.max_queued_spans
        if cfg.traces:
            span_exporter = _SpanExporter(self._health, endpoint=f"{base}/v1/traces" if base else None, **common)
            self._spans = BatchSpanProcessor(span_exporter, max_queue_size=cfg.max_queued_spans,
                                             max_export_batch_size=min(512, cfg.max_queued_spans),
                                             schedule_delay_millis=cfg.interval * 1000,
                                             export_timeout_millis=cfg.timeout * 1000)
            self._tracer_provider = TracerProvider(resource=resource)
            self._tracer_provider.add_span_processor(self._spans)
            self._tracer = self._tracer_provider.get_tracer("llm_vitals", ver)

    # -- the sink contract --------------------------------------------------------------
    async def start(self) -> None:
        return None

    def observe(self, r: ProbeResult) -> None:
        try:
            attrs = self._attributes(r)
            self._record(r, attrs)
            if self._tracer is not None:
                self._span(r, attrs)
        except Exception as exc:  # a result the SDK refuses must not stop the collector
            self._metrics.sink_errors.labels(self.name).inc()
            log.warning("otlp_record_failed", error=type(exc).__name__, target=r.target)

    def depth(self) -> int:
        return 0  # cumulative instruments, read by the exporter: nothing queues per result

    def submit_sweep(self, name: str, target: str, region: str, started_at: float, outcome: str,
                     levels: list[dict[str, Any]], saturation: dict[str, Any] | None) -> None:
        pass  # the GenAI semantic conventions have no capacity-sweep signal to map it to

    def submit_alert(self, transition: AlertTransition) -> None:
        return None

    async def stop(self, deadline: float) -> None:
        """A last export of the metrics and queued spans, at most `deadline` seconds."""
        def shutdown() -> None:
            ms = int(deadline * 1000)
            if self._tracer_provider is not None:
                self._tracer_provider.force_flush(ms)
                self._tracer_provider.shutdown()
            self._meters.shutdown(timeout_millis=ms)

        try:
            await asyncio.wait_for(asyncio.to_thread(shutdown), deadline + 1)
        except TimeoutError:
            log.warning("otlp_flush_timeout", deadline=deadline)

    def health(self) -> dict[str, Any]:
        failing = sorted(s for s, bad in self._health.failing.items() if bad)
        h = self._health
        return {"ok": not failing, "failing": failing, "export_failures": h.failures,
                "spans_dropped": h.spans_dropped}

    # -- recording --------------------------------------------------------------------
    def _attributes(self, r: ProbeResult) -> dict[str, Any]:
        prov = self._providers.get(r.provider) or _Provider("", r.provider, "")
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": prov.name,
            "gen_ai.request.model": r.model,
            "server.address": prov.address,
            "server.port": prov.port,
            "llm_vitals.probe": r.probe,
            "llm_vitals.provider": r.provider,
        }
        if not self._latest_only:
            attrs["gen_ai.system"] = prov.name
        err = error_type(r)
        if err is not None:
            attrs["error.type"] = err
        return attrs

    def _record(self, r: ProbeResult, attrs: dict[str, Any]) -> None:
        self._probes.add(1, {**attrs, "llm_vitals.outcome": r.outcome.value})
        if r.e2e is not None:
            self._duration.record(r.e2e, attrs)
        if not r.ok:
            return
        if r.ttft is not None:
            self._ttfc.record(r.ttft, attrs)
        for gap in r.itls:
            self._tpoc.record(gap, attrs)
        for kind, n in (("input", r.input_tokens), ("output", r.output_tokens)):
            if n is not None and n >= 0:
                self._tokens.record(n, {**attrs, "gen_ai.token.type": kind})
        for phase, value in phases_of(r).items():
            self._phase.record(value, {**attrs, "llm_vitals.phase": phase})

    def _span(self, r: ProbeResult, attrs: dict[str, Any]) -> None:
        start = int(r.started_at.timestamp() * 1e9)
        end_offset = r.e2e if r.e2e is not None else max(
            (x for x in (r.ttfb, r.ttft, r.ttft_content) if x is not None), default=0.0)
        span_attrs = {k: v for k, v in attrs.items()}
        for key, value in (("gen_ai.usage.input_tokens", r.input_tokens), ("gen_ai.usage.output_tokens", r.output_tokens),
                           ("gen_ai.response.finish_reasons", [r.finish_reason] if r.finish_reason else None),
                           ("http.response.status_code", r.status_code),
                           ("llm_vitals.outcome", r.outcome.value),
                           ("llm_vitals.request_id", r.request_id)):
            if value is not None:
                span_attrs[key] = value
        span = self._tracer.start_span(f"chat {r.model}", kind=SpanKind.CLIENT, start_time=start, attributes=span_attrs)
        for name, offset in (("gen_ai.first_byte", r.ttfb), ("gen_ai.first_token", r.ttft),
                             ("gen_ai.first_content_token", r.ttft_content)):
            if offset is not None:
                span.add_event(name, timestamp=start + int(offset * 1e9))
        if not r.ok:
            span.set_status(Status(StatusCode.ERROR, r.outcome.value))
        self._health.span_ended(self._max_queued)
        span.end(end_time=start + int(end_offset * 1e9))


def parse_headers(text: str) -> dict[str, str]:
    """`k=v,k2=v2` (the OTEL_EXPORTER_OTLP_HEADERS format, values URL-encoded)."""
    return dict(parse_env_headers(text, liberal=True))
