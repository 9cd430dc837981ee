"""Detector defaults: what the seasonal profiles and the likelihood gate learn from a series
that repeats (a daily square wave, a weekly pattern, a quantised series' usual dips)."""

from __future__ import annotations

import json

import numpy as np

from detector.core import LatencySeries
from detector.params import Params
from detector.replay import replay
from detector.service import DetectorConfig
from tests.detector.factories import T0

DAY = 86400.0
WEEK = 7 * DAY


def onsets(values: np.ndarray, step: float, direction: int = 1, **cfg: object) -> list[int]:
    """Rows where `detect` (default config unless overridden) reports an onset."""
    times = [T0 + step * i for i in range(len(values))]
    verdicts = replay(DetectorConfig(**cfg), times, [float(v) for v in values], direction)  # type: ignore[arg-type]
    return [i for i, (_, _, o) in enumerate(verdicts) if o]


def test_a_daily_square_wave_pages_on_no_day_once_its_edges_have_been_seen() -> None:
    # 20 by night, 80 from 09:00 to 21:00: on a flat baseline every rising edge is a
    # 4x step; the edges page while they are anomalous on the flat baseline, and the
    # season must learn them anyway (it takes every value) and be chosen over the flat
    # baseline on the rows it explains
    step = 300.0
    n = int(10 * DAY / step)
    rng = np.random.default_rng(11)
    hour = (np.arange(n) * step % DAY) / 3600.0
    values = np.where((hour >= 9) & (hour < 21), 80.0, 20.0) * np.exp(rng.normal(0.0, 0.02, n))
    got = onsets(values, step)
    assert [i for i in got if i * step >= 2 * DAY] == [], got


def weekly(seed: int, weeks: int, step: float) -> np.ndarray:
    """Busy weekdays (100, swinging 1.5x a day), quiet weekends (35), 5% noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(weeks * WEEK / step)) * step
    day = np.sin(2 * np.pi * (t % DAY) / DAY) * np.log(1.5) / 2
    weekend = ((t + T0) % WEEK) / DAY >= 5  # the replay's rows start at T0
    level = np.where(weekend, 35.0, 100.0)
    return level * np.exp(day + rng.normal(0.0, 0.05, len(t)))


def test_a_weekly_pattern_is_learnt_where_the_daily_profile_pages_every_weekend() -> None:
    step = 1800.0
    values = weekly(12, 6, step)
    late = int(3 * WEEK / step)
    daily_only = [i for i in onsets(values, step, season_week=0) if i >= late]
    assert len(daily_only) >= 3  # the daily profile alone: weekends page
    assert [i for i in onsets(values, step) if i >= late] == []
    # a real incident on a weekday still pages
    hit = values.copy()
    start = int((5 * WEEK + 1.5 * DAY) / step)
    hit[start:start + 12] *= 2.0
    got = [i for i in onsets(hit, step) if i >= late]
    assert len(got) == 1 and start <= got[0] <= start + 2, got


def test_season_memory_does_not_grow_with_the_row_rate() -> None:
    # summaries per period and phase bin: a week of 1-minute rows takes no more room
    # than a week of 5-minute rows
    sizes = []
    for step in (60.0, 300.0):
        s = LatencySeries(Params(season=DAY, season_week=WEEK))
        rng = np.random.default_rng(13)
        for i in range(int(8 * DAY / step)):
            s.observe(T0 + i * step, float(0.4 * np.exp(rng.normal(0.0, 0.1))))
        assert s.season is not None and s.season.week is not None
        json.dumps(s.season.to_state())  # the state is plain JSON
        day, week = s.season.day, s.season.week
        stored = [*day.periods.values(), *day.counts.values(), *week.periods.values(), *week.counts.values()]
        sizes.append(sum(len(row) for row in stored))
    # 3 numbers per bin and period (median and MAD, float32, and a count byte): 8 days
    # (today and 7 before) of 288 bins, 2 weeks of 336
    assert sizes[0] == sizes[1] == 3 * (8 * 288 + 2 * 336), sizes


def test_a_quantised_series_pages_on_a_spike_far_beyond_its_usual_dips() -> None:
    # CPU-like 5-minute rows: 0.132 mostly, 0.066 a fifth of the time (a dip of 2x, at
    # the row's clip every time); one row 17x the level is far beyond them and pages,
    # the usual dips never do
    step = 300.0
    n = int(10 * DAY / step)
    rng = np.random.default_rng(14)
    values = np.where(rng.random(n) < 0.2, 0.066, 0.132)
    assert [i for i in onsets(values, step, direction=0) if i * step >= 2 * DAY] == []
    spike = values.copy()
    at = int(8 * DAY / step)
    spike[at] = 2.3
    assert at in onsets(spike, step, direction=0)
