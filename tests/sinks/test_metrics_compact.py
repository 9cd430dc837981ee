"""The compact per-target families of daemon.metrics export exactly what prometheus_client's
own Histogram/Counter/Gauge children export for the same observations (names, types, HELP,
labels, buckets, series order, values; `_created` samples present, their values aside)."""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Iterator

import prometheus_client.metrics as pm
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from core.result import Outcome, ProbeResult
from daemon import metrics as dm
from daemon.metrics import Metrics
from tests.factories import result

T = dm.TARGET
COMPACT = (
    "llm_vitals_probe_ttft_seconds", "llm_vitals_probe_ttft_content_seconds", "llm_vitals_probe_e2e_seconds",
    "llm_vitals_probe_itl_seconds", "llm_vitals_probe_tpot_seconds", "llm_vitals_probe_phase_seconds",
    "llm_vitals_output_tokens_per_second", "llm_vitals_probes", "llm_vitals_probe_success",
    "llm_vitals_probe_last_timestamp_seconds", "llm_vitals_tokens", "llm_vitals_probe_cost_usd",
    "llm_vitals_rate_limit_remaining", "llm_vitals_anomaly_score", "llm_vitals_probes_skipped",
)


class Reference:
    """The previous implementation: one prometheus_client child per series (the spec)."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.ttft = Histogram("llm_vitals_probe_ttft_seconds", "Time to first token (text or reasoning), from the start of the request.", T, buckets=dm.LATENCY_BUCKETS, registry=r)
        self.ttft_content = Histogram("llm_vitals_probe_ttft_content_seconds", "Time to first visible text token (differs from ttft for reasoning models).", T, buckets=dm.LATENCY_BUCKETS, registry=r)
        self.e2e = Histogram("llm_vitals_probe_e2e_seconds", "Time from the start of the request to the end of the stream.", T, buckets=dm.LATENCY_BUCKETS, registry=r)
        self.itl = Histogram("llm_vitals_probe_itl_seconds", "Gaps between consecutive token-bearing chunks.", T, buckets=dm.ITL_BUCKETS, registry=r)
        self.tpot = Histogram("llm_vitals_probe_tpot_seconds", "Time per output token after the first: (e2e - ttft) / (output_tokens - 1).", T, buckets=dm.TPOT_BUCKETS, registry=r)
        self.phase = Histogram("llm_vitals_probe_phase_seconds", "Duration of each phase of a probe (connect, tls, ttfb, ttft, generation).", (*T, "phase"), buckets=dm.LATENCY_BUCKETS, registry=r)
        self.tps = Histogram("llm_vitals_output_tokens_per_second", "Output tokens per second after the first token.", T, buckets=dm.TPS_BUCKETS, registry=r)
        self.probes = Counter("llm_vitals_probes_total", "Probes by outcome.", (*T, "outcome"), registry=r)
        self.success = Gauge("llm_vitals_probe_success", "Whether the last probe succeeded (1) or not (0).", T, registry=r)
        self.last_probe = Gauge("llm_vitals_probe_last_timestamp_seconds", "Unix time the last probe of a target started.", T, registry=r)
        self.tokens = Counter("llm_vitals_tokens_total", "Tokens spent on probes.", (*T, "direction"), registry=r)
        self.cost = Counter("llm_vitals_probe_cost_usd_total", "Estimated probe cost in USD (config prices).", T, registry=r)
        self.rate_limit_remaining = Gauge("llm_vitals_rate_limit_remaining", "Provider-reported remaining rate limit (from response headers).", (*T, "kind"), registry=r)
        self.anomaly = Gauge("llm_vitals_anomaly_score", "Anomaly score of the latest probes against the baseline (>= 1 is anomalous).", (*T, "metric"), registry=r)
        self.skipped = Counter("llm_vitals_probes_skipped_total", "Scheduled probes not run, by reason.", (*T, "reason"), registry=r)
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
        for kind, value in dm._remaining(r.rate_limit):
            self.rate_limit_remaining.labels(*lv, kind).set(value)
        for name, v in (("connect", r.connect), ("tls", r.tls), ("ttfb", r.ttfb)):
            if v is not None:
                self.phase.labels(*lv, name).observe(v)
        if not r.ok:
            return
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
        h = self.itl.labels(*lv) if r.itls else None
        for gap in r.itls:
            assert h is not None
            h.observe(gap)

    def forget(self, labels: dict[str, str]) -> None:
        lv = tuple(labels[k] for k in T)
        for m in (self.ttft, self.ttft_content, self.e2e, self.itl, self.tpot, self.tps, self.success, self.last_probe, self.cost):
            try:
                m.remove(*lv)
            except KeyError:
                pass
        for family, extra in ((self.probes, self._outcomes), (self.tokens, ("input", "output")), (self.phase, dm.PHASES)):
            for e in extra:
                try:
                    family.remove(*lv, e)
                except KeyError:
                    pass
        for fam in (self.rate_limit_remaining, self.anomaly, self.skipped):
            for key in [k for k in fam._metrics if k[:len(lv)] == lv]:
                fam.remove(*key)


_CREATED = re.compile(r"^(\w+_created\{.*\}) \S+$", re.M)


def exposition(registry: CollectorRegistry, names: tuple[str, ...] = COMPACT) -> str:
    """Text exposition of the given families, `_created` values masked."""
    text = generate_latest(registry).decode()
    blocks = re.split(r"(?m)^(?=# HELP )", text)
    keep = [b for b in blocks if b and _family(b) in names]
    return _CREATED.sub(r"\1 <created>", "".join(keep))


def _family(block: str) -> str:
    m = re.match(r"# HELP (\w+)", block)
    assert m is not None
    return m.group(1).removesuffix("_created").removesuffix("_total")


def probes() -> Iterator[ProbeResult]:
    # values on, below, between and above bucket bounds; failures; phases; rate-limit headers
    itls = (0.0, 0.001, 0.0011, 0.0025, 0.02, 0.15, 0.3333, 1.0, 2.5, 4.99, 5.0, 7.0, 1e-9, 0.05, 0.05)
    for i, ttft in enumerate((0.05, 0.3, 0.0, 1.0, 2.2, 119.9, 120.0, 300.0, 0.75, 1e-4)):
        r = result(ttft, provider=f"p{i % 3}", model=f"m{i % 4}", region=("eu", "us")[i % 2],
                   itls=itls[i:] + itls[:i], output_tokens=(0, 1, 7, 1000)[i % 4], input_tokens=i % 3)
        r = dataclasses.replace(r, connect=0.0 if i % 2 else 0.012 * i, tls=None if i % 3 else 0.031 * i,
                                rate_limit={"x-ratelimit-remaining-requests": str(100 - i),
                                            "anthropic-ratelimit-tokens-remaining": "9e3", "x-junk-remaining": "n/a"})
        yield r
        yield dataclasses.replace(r, outcome=(Outcome.TIMEOUT, Outcome.HTTP_ERROR, Outcome.OK)[i % 3], connect=0.5)


def feed(*ms: Metrics | Reference) -> None:
    for i, r in enumerate(probes()):
        for m in ms:
            m.observe(r, cost_usd=(None, 0.0, 0.00123, 1.5)[i % 4])


def test_exposition_identical(monkeypatch: pytest.MonkeyPatch) -> None:
    # `_created` on, whatever an in-process Daemon of an earlier test switched off (it is global)
    monkeypatch.setattr(pm, "_use_created", True)
    ref, new = Reference(), Metrics(detail="full")
    assert exposition(new.registry) == exposition(ref.registry)  # empty
    feed(ref, new)
    for m in (ref, new):
        m.anomaly.labels("p0", "m0", "short", "eu", "ttft").set(1.25)
        m.skipped.labels("p1", "m1", "short", "us", "rate_limit").inc()
        m.skipped.labels("p1", "m1", "short", "us", "rate_limit").inc()
        m.skipped.labels("p1", "m2", "short", "eu", "budget_daily")
    text = exposition(new.registry)
    assert text == exposition(ref.registry)
    assert {_family(b) for b in re.split(r"(?m)^(?=# HELP )", text) if b} == set(COMPACT)
    assert 'llm_vitals_probe_itl_seconds_bucket{le="0.001",model="m0",probe="short",provider="p0",region="eu"}' in text
    assert "llm_vitals_probes_total{" in text and "llm_vitals_probes_created{" in text
    assert "llm_vitals_probe_phase_seconds_created{" in text
    # the rest of the registry is untouched
    assert "llm_vitals_build_info{version=\"0.1.0\"} 1.0" in generate_latest(new.registry).decode()


def test_get_sample_value() -> None:
    ref, new = Reference(), Metrics(detail="full")
    feed(ref, new)
    lab = {"provider": "p1", "model": "m1", "probe": "short", "region": "us"}
    for name, extra in (("llm_vitals_probe_itl_seconds_bucket", {"le": "0.05"}), ("llm_vitals_probe_itl_seconds_count", {}),
                        ("llm_vitals_probe_itl_seconds_sum", {}), ("llm_vitals_probes_total", {"outcome": "ok"}),
                        ("llm_vitals_probe_phase_seconds_sum", {"phase": "connect"}), ("llm_vitals_tokens_total", {"direction": "output"})):
        want = ref.registry.get_sample_value(name, {**lab, **extra})
        assert want is not None
        assert new.registry.get_sample_value(name, {**lab, **extra}) == want


def test_forget() -> None:
    ref, new = Reference(), Metrics(detail="full")
    feed(ref, new)
    for m in (ref, new):
        m.anomaly.labels("p0", "m0", "short", "eu", "ttft").set(1.25)
        m.anomaly.labels("p0", "m1", "short", "eu", "ttft").set(0.5)  # another target: kept
        m.skipped.labels("p0", "m0", "short", "eu", "rate_limit").inc()
    gone = {"provider": "p0", "model": "m0", "probe": "short", "region": "eu"}
    ref.forget(gone)
    new.forget(gone)
    new.forget({"provider": "nope", "model": "m", "probe": "short", "region": "eu"})  # unknown: no error
    text = exposition(new.registry)
    assert text == exposition(ref.registry)
    hist = [ln for ln in text.splitlines() if 'model="m0"' in ln and 'provider="p0"' in ln and 'region="eu"' in ln]
    assert hist == []
    assert 'llm_vitals_anomaly_score{metric="ttft",model="m1"' in text
    # a forgotten target that comes back starts from zero, at the end (like prometheus_client)
    again = result(0.4, provider="p0", model="m0", region="eu", itls=(0.01,))
    ref.observe(again)
    new.observe(again)
    assert exposition(new.registry) == exposition(ref.registry)


def test_created_switch() -> None:
    ref, new = Reference(), Metrics(detail="full")
    feed(ref, new)
    pm.disable_created_metrics()
    try:
        a, b = exposition(new.registry), exposition(ref.registry)
    finally:
        pm.enable_created_metrics()
    assert a == b and "_created" not in a


def test_nan_and_negative_like_prometheus_client() -> None:
    ref = Histogram("h_seconds", "h", ("a",), buckets=dm.ITL_BUCKETS, registry=(rr := CollectorRegistry()))
    nr = CollectorRegistry()
    new = dm.CompactHistogram("h_seconds", "h", ("a",), dm.ITL_BUCKETS, nr)
    vals = (float("nan"), -1.0, float("-inf"), 0.01, float("inf"))
    for v in vals:
        ref.labels("x").observe(v)
        new.observe_key(("x",), v)
    new.observe_many(("y",), vals)
    for v in vals:
        ref.labels("y").observe(v)
    assert exposition(nr, ("h_seconds",)) == exposition(rr, ("h_seconds",))
    with pytest.raises(ValueError):
        Metrics().tokens.labels("p", "m", "short", "eu", "input").inc(-1)


def test_scrape_while_observing_from_another_thread() -> None:
    m = Metrics()
    stop = threading.Event()
    errors: list[BaseException] = []

    def scrape() -> None:
        try:
            while not stop.is_set():
                generate_latest(m.registry)
        except BaseException as e:  # pragma: no cover
            errors.append(e)

    t = threading.Thread(target=scrape)
    t.start()
    try:
        for i in range(300):
            m.observe(result(0.1 + i / 1000, model=f"m{i % 50}", itls=(0.01,) * 32))
            if i % 7 == 0:
                m.forget({"provider": "p", "model": f"m{(i + 3) % 50}", "probe": "short", "region": "local"})
    finally:
        stop.set()
        t.join()
    assert not errors
