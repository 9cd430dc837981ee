"""`detector:` in the config: durations and numbers only (no numpy), turned into `Params`."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, PlainSerializer, model_validator

from core.durations import Duration, Fraction, format_duration, parse_duration
from core.strict import Strict
from detector.params import Params, Span

LATENCY_METRICS: tuple[str, ...] = ("ttft", "e2e", "itl")
METRICS: tuple[str, ...] = (*LATENCY_METRICS, "output_tps", "error")


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
    # ...or, for a calm series, this many of its own robust sigmas if that is less (0 = off):
    # judged against itself, a series whose latency barely moves pages on a change that is
    # large for it (a series with sigma 0.04 in log pages at +22%, one at 0.12 at +30%)
    min_effect_sigmas: float = Field(5.0, ge=0)
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
    # weekly profile (0 = off): learnt beside the daily one and used instead of it where it
    # explains the series better (weekends unlike weekdays); needs a week of history
    season_week: Duration = Field(7 * 86400.0, ge=0)
    z_cap: float = Field(3.0, gt=0)
    # off by default (0): the recent median must also be beyond this quantile of the
    # baseline (a level the baseline often holds never pages); the NAB harness uses 0.95
    novelty: float = Field(0.0, ge=0, lt=1)
    # off by default (0): one probe beyond the range of the last record_window probes by
    # this fraction of (edge - median) pages on its own. One slow probe is not an incident
    # for an LLM endpoint. (Rows that are aggregates of 30 probes' time or more always run
    # a record test of their own: two weeks, a quarter of the reach, the practical size.)
    record_margin: float = Field(0.0, ge=0)
    record_window: int = Field(4032, ge=10)
    # judge a series against itself: its recent surprise (how far its newest values are
    # from its own reference, averaged over `recent`) must be one the series shows by
    # chance less than once in this long, judged against its own history of surprise
    # (remembered for likelihood_memory): a bursty series does not page on its usual
    # bursts, a calm one is not held to a bursty one's bar (0 = off). 90 days made a +50%
    # step wait a sixth probe in 3 of 20 runs (bench/detection.py)
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
            min_effect_sigmas=self.min_effect_sigmas,
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
            season_week=self.season_week,
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


