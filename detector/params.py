"""The detector's numbers, as plain values: windows (`Span`) and `Params`.

No numpy, scipy or pydantic here, so the config (detector.config) and `check` import it
cheaply; the statistics that use them live in detector.core.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ROW_CAP = 10080  # most rows any window holds (a week of 1-minute probes): bounded memory


@dataclass(frozen=True, slots=True)
class Span:
    """A window: a duration, turned into rows at the series' own measured row interval, or
    (the old meaning of a bare number in the config) a fixed number of rows."""

    seconds: float = 0.0
    rows: int = 0

    def count(self, dt: float, floor: int = 1, cap: int = ROW_CAP) -> int:
        n = self.rows if self.rows else math.ceil(self.seconds / dt - 1e-9)
        return min(max(n, floor), cap)


def _span(v: Span | int) -> Span:
    return v if isinstance(v, Span) else Span(rows=int(v))



@dataclass(slots=True)
class Params:
    """Numbers the series need (a plain copy of the config's, so the core has no pydantic)."""

    min_effect: float = 0.3  # log scale: relative change of the median
    # log scale: the practical size is at most this many of the series' own robust sigmas
    # (0: off), so a calm series pages on a change that is large for it
    min_effect_sigmas: float = 0.0
    # raw scale (series with zeros or negatives, `detect` only): robust sigmas of the median
    raw_min_effect: float = 3.0
    design_effect: float = 0.5  # the shift the CUSUM is tuned to catch fastest (same units)
    # windows (a Span, or a bare row count): turned into rows at the measured interval
    recent: Span | int = Span(300.0)  # whose median is the recent level (steps)
    quarantine: Span | int = Span(600.0)  # a value waits this long before joining the baseline
    short_baseline: Span | int = Span(7200.0)  # the newest healthy values, for steps
    baseline_size: Span | int = Span(43200.0)  # every healthy value kept, for creeps
    baseline_min: Span | int = Span(3600.0)  # warm-up: no verdict with less baseline
    slow_window: Span | int = Span(1800.0)  # the creep test's recent window
    baseline_max_age: float = 86400.0
    exit_fraction: float = 0.5
    z_cap: float = 3.0  # robust z-scores are clipped to +-z_cap: one probe weighs at most that
    sigma_floor: float = 0.02  # oriented-scale floor for the robust spread
    # score values beyond the baseline's range by a robust z instead of the top rank: reacts
    # to huge jumps a probe earlier but lets heavy tails inflate false alarms (off for latency)
    extrapolate: bool = False
    # errors
    min_error_effect: float = 0.01
    error_windows: tuple[int, ...] = (10, 30, 120)
    error_baseline_size: int = 1440
    error_prior_rate: float = 0.005
    error_prior_weight: float = 200.0
    exit_alpha: float = 0.01
    # after this many probes in one anomaly, its level becomes the new normal (0: never)
    relearn_after: int = 0
    # ...or after this long (seconds; 0: never): the anomaly resolves, the baseline is rebuilt
    # from its newest values
    relearn_time: float = 0.0
    # seasonal model: period (seconds, 0: off), phase bins per period, periods remembered,
    # periods of history before it may be used, and how much better than the plain short
    # baseline (mean absolute deviation ratio) its residuals must be to be used
    season: float = 0.0
    season_bins: int = 288
    season_periods: int = 7
    season_min_periods: float = 1.0
    season_gain: float = 0.9
    # weekly profile (period in seconds, 0: off; 30-minute bins, 4 weeks remembered), used
    # instead of the daily one where it explains the series better by the same gain
    season_week: float = 0.0
    season_week_bins: int = 336
    season_week_periods: int = 4
    # an anomaly ends once its effect has stayed small for this long (seconds): one page
    # per incident, not one per wobble
    exit_hold: float = 300.0
    # novelty quantile (0: off): the recent median must also lie beyond this quantile of
    # the baseline (below 1 - q for a fall), so a level the baseline often holds never pages
    novelty: float = 0.0
    # record test (0: off): one value beyond the range of the last `record_window` values
    # (all of them, anomalous or not) by record_margin x (that range's edge - its median)
    # is an anomaly on its own. Off in the daemon, where one slow probe must never page.
    record_margin: float = 0.0
    record_window: int = 4032
    # likelihood gate (seconds, 0: off): the recent surprise must be one the series itself
    # shows by chance less than once in this long (a normal upper tail against its own
    # history, see _Surprise, at most row interval / likelihood per row), remembered this long
    likelihood: float = 0.0
    likelihood_memory: float = 7 * 86400.0

    def __post_init__(self) -> None:
        # a bare number is a row count (how tests and the old config spell windows)
        self.recent = _span(self.recent)
        self.quarantine = _span(self.quarantine)
        self.short_baseline = _span(self.short_baseline)
        self.baseline_size = _span(self.baseline_size)
        self.baseline_min = _span(self.baseline_min)
        self.slow_window = _span(self.slow_window)
