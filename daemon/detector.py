"""Detector: per-series baseline of recent healthy behaviour vs the latest probes.

Series: every target ("provider/model/probe") x metric in METRICS. ttft, e2e and itl
(the probe's itl_p50, else itl_mean) are anomalous when they rise, output_tps when it
falls; "error" is 1 for a probe whose outcome is not ok. Only ok probes feed the latency
series. The statistics live in `daemon.detector_core` (rank-CUSUM for latencies,
binomial tests for errors); this module owns config, FDR across series, verdicts and
persistence.

A verdict is anomalous when the series is both statistically significant after
Benjamini-Hochberg across every series of the evaluation (q <= fdr_q) and practically
large (effect >= min_effect / min_error_effect). It stays anomalous until the effect
falls below exit_fraction of the minimum (hysteresis: one page per incident), and its
baseline is frozen meanwhile; an anomaly that lasts relearn_time (12 h) resolves and its
level becomes the new baseline (a provider's new normal). Windows are durations, turned
into rows at each series' measured interval; a daily profile is used where it explains a
series; and a change must also be rare for the series itself (the likelihood gate). `score` = min(log q / log fdr_q, effect / min effect)
(or the record ratio, when that test is on),
raised to 1.0 while anomalous: >= 1.0 exactly when anomalous, continuous below.

State: one Store key per target (`detector:<target>`) plus `detector:index`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, PlainSerializer, model_validator

from daemon.detector_core import (
    ErrorSeries,
    LatencySeries,
    Params,
    Span,
    benjamini_hochberg,
    decide,
)
from daemon.durations import Duration, Fraction, format_duration, parse_duration
from daemon.loopslice import SLICE, LoopSlice
from daemon.model import Strict
from daemon.store import Store
from probes.result import ProbeResult

LATENCY_METRICS: tuple[str, ...] = ("ttft", "e2e", "itl")
METRICS: tuple[str, ...] = (*LATENCY_METRICS, "output_tps", "error")
STATE_PREFIX = "detector:"
STATE_INDEX = "detector:index"
STATE_VERSION = 1


def _parse_window(value: Any) -> Span:
    """'30m' (a duration, measured in rows at each series' own interval) or a bare whole
    number (that many rows: the keys' meaning before they took durations)."""
    if isinstance(value, Span):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '30m' or a number of probes")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a number of probes cannot be negative")
        return Span(rows=value)
    if isinstance(value, str):
        return Span(seconds=parse_duration(value))
    raise ValueError("expected a duration such as '30m' or a whole number of probes")


def _format_window(span: Span) -> str | int:
    return span.rows if span.rows else format_duration(span.seconds)


# a detector window: a duration ("2h") or, as before, a number of probes (120)
Window = Annotated[Span, BeforeValidator(_parse_window), PlainSerializer(_format_window)]


def _positive(span: Span) -> bool:
    return span.rows > 0 or span.seconds > 0


class DetectorConfig(Strict):
    """`detector:` in config.yaml. Defaults are the ones measured by bench/detection.py."""

    enabled: bool = True
    metrics: tuple[str, ...] = METRICS
    # practical size: relative change of the median (0.3 = +30% latency, or tps / 1.3)
    min_effect: Fraction = Field(0.3, gt=0)
    # practical size for a series with zeros or negatives (`detect` only, where a relative
    # change means nothing): robust sigmas of the baseline the median must move
    raw_min_effect: float = Field(3.0, gt=0)
    # the step the statistic is tuned to catch fastest (CUSUM reference = half of it)
    design_effect: Fraction = Field(0.5, gt=0)
    # practical size for errors: increase of the error rate over the baseline (absolute)
    min_error_effect: Fraction = Field(0.01, gt=0, le=1)
    # Benjamini-Hochberg levels per evaluation, across all latency-like series (ttft, e2e,
    # itl, output_tps) and across all error series. The latency p-values are approximate and
    # re-tested every probe: bench/detection.py shows no false page in simulated weeks of
    # heavy-tailed noise with a daily cycle at 1e-5. Error p-values are exact binomial tails.
    fdr_q: float = Field(1e-5, gt=0, lt=1)
    error_fdr_q: float = Field(1e-3, gt=0, lt=1)
    # Windows are durations, turned into rows at each series' own measured interval (the
    # median of its recent gaps), so the same settings hold at one probe a minute and for
    # hourly rows; a bare number is a count of probes, as these keys used to be.
    recent: Window = Span(300.0)  # whose median is compared to the baseline (5 probes at 1/min)
    slow_window: Window = Span(1800.0)  # compared to the whole baseline (creeps)
    quarantine: Window = Span(600.0)  # a value waits this long before it may join the baseline
    short_baseline: Window = Span(7200.0)  # newest baseline values, for steps
    baseline_size: Window = Span(43200.0)  # latency baseline, for creeps
    baseline_min: Window = Span(3600.0)  # less baseline: no verdict yet (warm-up)
    baseline_max_age: Duration = Field(86400.0, gt=0)
    error_baseline_size: int = Field(1440, ge=10)
    error_windows: tuple[int, ...] = (10, 30, 120)
    error_prior_rate: Fraction = Field(0.005, gt=0, lt=1)  # prior and floor of the baseline rate
    exit_fraction: float = Field(0.5, ge=0, le=1)  # an anomaly ends below this x min effect...
    exit_hold: Duration = Field(3600.0, ge=0)  # ...held this long (one page per incident)
    # after this many probes in one anomaly its level becomes the new normal; 0 = never
    relearn_after: int = Field(0, ge=0)
    # ...or after it has lasted this long (0 = never): the anomaly resolves and the baseline
    # is rebuilt from its newest probes. 12 h: a provider's lasting change pages, stays
    # firing for half a day (long enough to be seen and acted on) and is then its new normal
    relearn_time: Duration = Field(43200.0, ge=0)
    # seasonal baseline: period (0 = off, e.g. "1d"); used per series only where the
    # time-of-day profile explains the healthy probes better than the recent baseline
    season: Duration = Field(86400.0, ge=0)
    z_cap: float = Field(3.0, gt=0)
    # off by default (0): the recent median must also be beyond this quantile of the
    # baseline (a level the baseline often holds never pages); the NAB harness uses 0.95
    novelty: float = Field(0.0, ge=0, lt=1)
    # off by default (0): one probe beyond the range of the last record_window probes by
    # this fraction of (edge - median) pages on its own. One slow probe is not an incident
    # for an LLM endpoint; the NAB harness, whose anomalies are often single points, uses 0.2
    record_margin: float = Field(0.0, ge=0)
    record_window: int = Field(4032, ge=10)
    # judge a series against itself: its recent surprise (how far its newest values are
    # from its own reference, averaged over `recent`) must be one the series shows by
    # chance less than once in this long, judged against its own history of surprise
    # (remembered for likelihood_memory): a bursty series does not page on its usual
    # bursts, a calm one is not held to a bursty one's bar (0 = off)
    likelihood: Duration = Field(30 * 86400.0, ge=0)
    likelihood_memory: Duration = Field(7 * 86400.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> DetectorConfig:
        unknown = set(self.metrics) - set(METRICS)
        if unknown:
            raise ValueError(f"unknown detector metrics {sorted(unknown)}; known: {list(METRICS)}")
        if not self.error_windows or min(self.error_windows) < 1:
            raise ValueError("error_windows must be positive probe counts")
        for name in ("recent", "slow_window", "short_baseline", "baseline_size", "baseline_min"):
            if not _positive(getattr(self, name)):
                raise ValueError(f"{name} must be a positive duration or number of probes")
        if self.recent.rows > 100 or self.slow_window.rows > 1000:
            raise ValueError("recent is at most 100 probes and slow_window at most 1000")
        chain = (self.baseline_min, self.short_baseline, self.baseline_size)
        for kind in ("rows", "seconds"):  # comparable only in the same unit
            vals = [getattr(w, kind) for w in chain]
            if all(vals) and not vals[0] <= vals[1] <= vals[2]:
                raise ValueError("need baseline_min <= short_baseline <= baseline_size")
        return self

    def params(self) -> Params:
        return Params(
            min_effect=self.min_effect,
            raw_min_effect=self.raw_min_effect,
            design_effect=self.design_effect,
            recent=self.recent,
            slow_window=self.slow_window,
            quarantine=self.quarantine,
            short_baseline=self.short_baseline,
            baseline_size=self.baseline_size,
            baseline_min=self.baseline_min,
            baseline_max_age=self.baseline_max_age,
            exit_fraction=self.exit_fraction,
            exit_hold=self.exit_hold,
            relearn_after=self.relearn_after,
            relearn_time=self.relearn_time,
            season=self.season,
            z_cap=self.z_cap,
            novelty=self.novelty,
            record_margin=self.record_margin,
            record_window=self.record_window,
            likelihood=self.likelihood,
            likelihood_memory=self.likelihood_memory,
            min_error_effect=self.min_error_effect,
            error_windows=tuple(sorted(self.error_windows)),
            error_baseline_size=self.error_baseline_size,
            error_prior_rate=self.error_prior_rate,
        )


@dataclass(frozen=True, slots=True)
class AnomalyVerdict:
    target: str
    metric: str
    anomalous: bool
    score: float  # >= 1.0 means anomalous
    p_value: float
    q_value: float
    effect: float  # relative median change (latency, tps) or error-rate increase
    baseline: float  # baseline median (seconds, tokens/s) or error rate
    recent: float  # recent median or error rate
    n_baseline: int
    n_recent: int
    since: float | None  # unix time the current anomaly started


def _itl(r: ProbeResult) -> float | None:
    return r.itl_p50 if r.itl_p50 is not None else r.itl_mean


_EXTRACT = {
    "ttft": lambda r: r.ttft,
    "e2e": lambda r: r.e2e,
    "itl": _itl,
    "output_tps": lambda r: r.output_tps,
}


class Detector:
    def __init__(self, cfg: DetectorConfig, store: Store | None = None, threshold: float = 1.0) -> None:
        self.cfg = cfg
        # on the score (1.0: the daemon's); other values only for the bench's threshold sweep
        self.threshold = threshold
        self.store = store
        self._params = cfg.params()
        self.series: dict[tuple[str, str], LatencySeries | ErrorSeries] = {}
        self.labels: dict[str, dict[str, str]] = {}
        self._dirty: set[str] = set()
        self._saved: set[str] = set()

    # -- feeding ----------------------------------------------------------------------
    def _get(self, target: str, metric: str, *, direction: int | None = None,
             log_scale: bool = True) -> LatencySeries | ErrorSeries:
        key = (target, metric)
        s = self.series.get(key)
        if s is None:
            if metric == "error":
                s = ErrorSeries(self._params)
            else:
                if direction is None:
                    direction = -1 if metric == "output_tps" else 1
                s = LatencySeries(self._params, direction=direction, log_scale=log_scale)
            self.series[key] = s
        return s

    def observe_value(self, target: str, metric: str, t: float, value: float, *,
                      direction: int = 1, log_scale: bool = True) -> None:
        """One observation of any numeric series (`detect` replays files through this).

        direction: +1 anomalous when it rises, -1 when it falls, 0 either way; log_scale
        judges relative changes (positive values only), else raw values in robust sigmas.
        The series is created on its first value with these; later calls reuse it."""
        if not self.cfg.enabled:
            return
        s = self._get(target, metric, direction=direction, log_scale=log_scale)
        assert isinstance(s, LatencySeries)
        s.observe(t, value)
        self._dirty.add(target)

    def observe(self, result: ProbeResult) -> None:
        if not self.cfg.enabled:
            return
        target = result.target
        self.labels[target] = {
            "provider": result.provider,
            "model": result.model,
            "probe": result.probe,
            "region": result.region,
        }
        t = result.started_at.timestamp()
        for metric in self.cfg.metrics:
            if metric == "error":
                s = self._get(target, metric)
                assert isinstance(s, ErrorSeries)
                s.observe(t, not result.ok)
            elif result.ok:
                value = _EXTRACT[metric](result)
                if value is not None:
                    s = self._get(target, metric)
                    assert isinstance(s, LatencySeries)
                    s.observe(t, float(value))
        self._dirty.add(target)

    # -- judging -----------------------------------------------------------------------
    def evaluate(self, now: float | None = None) -> dict[tuple[str, str], AnomalyVerdict]:
        steps = self._evaluate_steps(now)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    async def evaluate_async(self, now: float | None = None,
                             slice_s: float = SLICE) -> dict[tuple[str, str], AnomalyVerdict]:
        """`evaluate` for the running daemon, handing the loop back every few milliseconds:
        at 1,000 targets one evaluation is ~0.1 s of CPU, which would stall every probe's
        reads (and their kernel stamps would merge) every evaluation interval."""
        steps = self._evaluate_steps(now)
        loop_slice = LoopSlice(slice_s)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            await loop_slice.pause()

    def _evaluate_steps(self, now: float | None) -> Generator[None, None, dict[tuple[str, str], AnomalyVerdict]]:
        """The evaluation, yielding after each series (probes may land in between; a series
        forgotten meanwhile by a reload is skipped)."""
        now = time.time() if now is None else now
        items = list(self.series.items())
        statuses = []
        for _, series in items:
            statuses.append(series.status(self.cfg.fdr_q))
            yield
        keys = [k for k, _ in items]
        # Two BH families: latency-like series (approximate CUSUM tails, hence the small
        # level) and error series (exact binomial tails). FDR <= fdr_q + error_fdr_q.
        qs = [1.0] * len(keys)
        levels = [self.cfg.error_fdr_q if k[1] == "error" else self.cfg.fdr_q for k in keys]
        for is_error in (False, True):
            idx = [i for i, k in enumerate(keys) if (k[1] == "error") == is_error]
            for i, q in zip(idx, benjamini_hochberg([statuses[i].p_value for i in idx]), strict=True):
                qs[i] = q
        out: dict[tuple[str, str], AnomalyVerdict] = {}
        for (key, s), st, q, level in zip(items, statuses, qs, levels, strict=True):
            if self.series.get(key) is not s:
                continue
            sig = math.log(max(q, 1e-300)) / math.log(level)
            raw = max(0.0, min(sig, st.effect_ratio), st.record_ratio) if st.ready else 0.0
            if decide(s, st, q, level, now, self.threshold):
                self._dirty.add(key[0])
            score = max(raw, 1.0) if s.anomalous else min(raw, math.nextafter(1.0, 0.0))
            out[key] = AnomalyVerdict(
                target=key[0],
                metric=key[1],
                anomalous=s.anomalous,
                score=float(score),
                p_value=float(st.p_value),
                q_value=float(q),
                effect=float(st.effect),
                baseline=float(st.baseline),
                recent=float(st.recent),
                n_baseline=st.n_baseline,
                n_recent=st.n_recent,
                since=s.since,
            )
            yield
        return out

    # -- lifecycle ---------------------------------------------------------------------
    def forget(self, keep: set[str]) -> None:
        """Drop every series whose target is not in `keep` (removed from the config)."""
        gone = {t for t, _ in self.series} - keep
        for key in [k for k in self.series if k[0] in gone]:
            del self.series[key]
        for t in gone:
            self.labels.pop(t, None)
            self._dirty.discard(t)
        if self.store is not None:
            stale = (gone | self._saved) - keep
            if stale:
                with self.store.transaction() as c:
                    c.executemany("DELETE FROM kv WHERE key = ?", [(STATE_PREFIX + t,) for t in stale])
                self._saved -= stale
                self.store.put_state(STATE_INDEX, sorted(self._saved))

    def _grouped(self, targets: list[str]) -> dict[str, list[tuple[str, Any]]]:
        """These targets' series, in one pass over all series."""
        grouped: dict[str, list[tuple[str, Any]]] = {t: [] for t in targets}
        for (t, m), series in list(self.series.items()):
            g = grouped.get(t)
            if g is not None:
                g.append((m, series))
        return grouped

    def _state(self, target: str, series: list[tuple[str, Any]]) -> dict[str, Any]:
        return {"v": STATE_VERSION, "labels": dict(self.labels.get(target, {})),
                "series": {m: s.to_state() for m, s in series}}

    def _snapshot(self, targets: list[str]) -> list[tuple[str, dict[str, Any]]]:
        grouped = self._grouped(targets)
        return [(t, self._state(t, grouped[t])) for t in targets]

    def _take_dirty(self) -> tuple[list[str], list[str] | None]:
        dirty, self._dirty = self._dirty, set()
        index = None
        if dirty - self._saved:
            self._saved |= dirty
            index = sorted(self._saved)
        return sorted(dirty), index

    def _write(self, states: list[tuple[str, dict[str, Any]]], index: list[str] | None) -> None:
        assert self.store is not None
        for target, st in states:
            self.store.put_state(STATE_PREFIX + target, st)
        if index is not None:
            self.store.put_state(STATE_INDEX, index)

    def save(self) -> None:
        """Persist baselines of targets that changed since the last save (at shutdown)."""
        if self.store is None:
            return
        targets, index = self._take_dirty()
        self._write(self._snapshot(targets), index)

    async def save_async(self, slice_s: float = SLICE) -> None:
        """`save` for the running daemon: the series keep changing on the loop, so they are
        copied there, a few milliseconds of it per loop step (at 1,000 targets the whole
        copy is over half a second of CPU), and only the SQLite writes go to a thread."""
        if self.store is None:
            return
        targets, index = self._take_dirty()
        try:
            grouped = self._grouped(targets)
            states: list[tuple[str, dict[str, Any]]] = []
            loop_slice = LoopSlice(slice_s)
            for t in targets:
                states.append((t, self._state(t, grouped[t])))
                await loop_slice.pause()
            await asyncio.to_thread(self._write, states, index)
        except BaseException:
            self._dirty.update(targets)  # written next time
            raise

    def load(self) -> None:
        """Restore baselines saved by `save` (missing or foreign-version state is ignored)."""
        if self.store is None:
            return
        index = self.store.get_state(STATE_INDEX, []) or []
        for target in index:
            st = self.store.get_state(STATE_PREFIX + target)
            if not isinstance(st, dict) or st.get("v") != STATE_VERSION:
                continue
            self._saved.add(target)
            self.labels[target] = dict(st.get("labels") or {})
            for metric, sst in (st.get("series") or {}).items():
                if metric not in self.cfg.metrics:
                    continue
                self._get(target, metric).load_state(sst)
