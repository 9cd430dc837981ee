"""Detector: time, not rows (hourly rows, bursts), the default season, judging a series
against itself, and that state surviving a restart."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from core.store import Store
from detector.core import LatencySeries
from detector.replay import replay
from detector.service import Detector, DetectorConfig
from tests.detector.factories import T0
from tests.factories import result

DAY = 86400.0


def onsets(values: np.ndarray, step: float, **cfg: object) -> list[int]:
    times = [T0 + step * i for i in range(len(values))]
    return [i for i, (_, _, o) in enumerate(replay(DetectorConfig(**cfg), times, list(values))) if o]


def lognormal(seed: int, n: int, sigma: float = 0.12, swing: float = 1.0, per_day: int = 1440) -> np.ndarray:
    """Latencies around 400 ms; the median swings `swing` times between night and day."""
    rng = np.random.default_rng(seed)
    cycle = math.log(swing) / 2 * np.sin(2 * np.pi * np.arange(n) / per_day)
    return 0.4 * np.exp(cycle + rng.normal(0.0, sigma, n))


def test_one_slow_probe_is_noise_a_burst_of_three_is_an_incident() -> None:
    values = lognormal(1, 2 * 1440)
    lone = values.copy()
    lone[1500] *= 4.0
    assert onsets(lone, 60.0) == []
    burst = values.copy()
    burst[1500:1503] *= 4.0
    got = onsets(burst, 60.0)
    assert len(got) == 1 and 1500 <= got[0] <= 1503, got


def test_one_hourly_row_far_off_is_an_hour_of_trouble() -> None:
    # hourly means: their noise is small and one row is a whole hour
    values = lognormal(2, 24 * 14, sigma=0.05, swing=2.0, per_day=24)
    spike = values.copy()
    spike[24 * 12 + 5] *= 2.0
    got = onsets(spike, 3600.0)
    assert got == [24 * 12 + 5], got
    assert onsets(values, 3600.0) == []


def test_at_hourly_rows_an_incident_ends_in_hours_not_days_and_the_next_one_pages() -> None:
    values = lognormal(3, 24 * 30, sigma=0.05, per_day=24)
    values[24 * 10:24 * 10 + 6] *= 2.0  # six bad hours
    values[24 * 20:24 * 20 + 6] *= 2.0  # and again ten days later
    got = onsets(values, 3600.0)
    assert got == [24 * 10, 24 * 20], got


def test_a_healthy_3x_daily_swing_never_pages_and_a_step_on_it_still_does() -> None:
    values = lognormal(4, 10 * 1440, swing=3.0)
    assert onsets(values, 60.0) == []
    values[9 * 1440 + 300:] *= 2.0
    got = onsets(values, 60.0)
    assert len(got) == 1 and 9 * 1440 + 300 <= got[0] < 9 * 1440 + 305, got


def test_a_calm_series_pages_on_a_burst_of_three_a_heavy_tailed_one_needs_more() -> None:
    """Judged against itself: three slow probes in a row are rare for a calm series; for
    one where 2% of probes are slow (Pareto) three in five are its habit, more are not."""
    n = 4 * 1440
    calm = lognormal(5, n)
    calm[3 * 1440:3 * 1440 + 3] *= 4.0
    assert [i for i in onsets(calm, 60.0) if i > 1440] == [3 * 1440 + 2]
    rng = np.random.default_rng(6)
    heavy = lognormal(6, n)
    tail = rng.random(n) < 0.02
    heavy[tail] *= 1.5 * (1 + rng.pareto(1.5, tail.sum()))
    heavy[3 * 1440:3 * 1440 + 3] *= 4.0
    gated = [i for i in onsets(heavy, 60.0) if i > 1440]
    assert 3 * 1440 + 2 not in gated
    heavy[3 * 1440:3 * 1440 + 6] *= 4.0  # a burst that goes on
    assert any(3 * 1440 + 2 < i <= 3 * 1440 + 6 for i in onsets(heavy, 60.0))


def test_interval_surprise_and_season_survive_a_restart(tmp_path: Path) -> None:
    """Saved mid-way and restored through the store, a 5-minute seasonal series goes on as
    if never stopped: same interval, same history of surprise, the same page."""
    values = lognormal(6, 4 * 288, swing=2.0, per_day=288)
    values[3 * 288 + 100:] *= 3.0
    times = [T0 + 300.0 * i for i in range(len(values))]
    half = 3 * 288

    def feed(det: Detector, lo: int, hi: int) -> list[int]:
        pages = []
        for i in range(lo, hi):
            was = det.series.get(("x", "ttft")) is not None and det.series[("x", "ttft")].anomalous
            det.observe_value("x", "ttft", times[i], float(values[i]))
            if det.evaluate(now=times[i])[("x", "ttft")].anomalous and not was:
                pages.append(i)
        return pages

    twin = Detector(DetectorConfig())
    store = Store(tmp_path / "state.db")
    first = Detector(DetectorConfig(), store=store)
    assert feed(first, 0, half) == feed(twin, 0, half)
    first.save()
    store.close()
    restored = Detector(DetectorConfig(), store=Store(tmp_path / "state.db"))
    restored.load()
    a, b = restored.series[("x", "ttft")], twin.series[("x", "ttft")]
    assert isinstance(a, LatencySeries) and isinstance(b, LatencySeries)
    assert a.dt.value == b.dt.value == 300.0 and a.seasonal == b.seasonal
    assert a.surprise.weight == pytest.approx(b.surprise.weight)
    assert a.surprise.total == pytest.approx(b.surprise.total / b.surprise.inc)
    got, want = feed(restored, half, len(values)), feed(twin, half, len(values))
    assert got == want and len(want) == 1 and 3 * 288 + 100 <= want[0] <= 3 * 288 + 102


def test_a_young_hourly_series_pages_on_an_hour_beyond_everything_it_has_shown() -> None:
    """Hourly rows are aggregates: one beyond the range of the last two weeks (by a margin of
    that range's reach above its median on the log scale, wider while the series is young)
    and by the practical size pages, even before the series has the history to certify how
    rare its bursts are: three days into a noisy series with an 1.8x hour in twelve (the
    likelihood gate alone paged 5 of these 10), while its healthy days do not page."""
    peak = 24 * 3 + 2
    for seed in range(20, 30):
        values = lognormal(seed, 24 * 4, sigma=0.25, per_day=24)
        values[np.random.default_rng(seed).random(len(values)) < 0.08] *= 1.8
        assert [i for i in onsets(values, 3600.0) if i >= 24] == [], seed
        hist = values[:peak]
        top, med = float(hist.max()), float(np.median(hist))
        values[peak] = top * (top / med) ** 0.75  # beyond the range by 3/4 of its reach
        assert [i for i in onsets(values, 3600.0) if i >= 24] == [peak], seed


def test_an_hourly_record_smaller_than_the_practical_size_does_not_page() -> None:
    """A calm hourly series' new record is not an incident unless it is also the practical
    size above the baseline."""
    values = lognormal(8, 24 * 6, sigma=0.03, per_day=24)
    row = 24 * 5
    hist = values[:row]
    top, med = float(hist.max()), float(np.median(hist))
    values[row] = top * math.sqrt(top / med)  # beyond the range by half its reach
    assert values[row] < 1.15 * med
    assert row not in onsets(values, 3600.0)
    values[row] = 1.6 * med  # the practical size: an incident
    assert row in onsets(values, 3600.0)


def _daemon_pages(values: np.ndarray, step: float) -> list[int]:
    """Rows where the daemon would page: each value one probe's TTFT, through
    `Detector.observe` as the daemon feeds its results."""
    det = Detector(DetectorConfig(metrics=["ttft"]))
    pages, was = [], False
    for i, v in enumerate(values):
        t = T0 + step * i
        det.observe(result(float(v), started_at=datetime.fromtimestamp(t, UTC)))
        now = det.evaluate(now=t)[(result().target, "ttft")].anomalous
        if now and not was:
            pages.append(i)
        was = now
    return pages


def _heavy(seed: int, n: int) -> np.ndarray:
    """Probes around 400 ms with 2% of them slowed by a Pareto(1.5) factor (the bench's noise)."""
    rng = np.random.default_rng(seed)
    values = 0.4 * np.exp(rng.normal(0.0, 0.12, n))
    tail = rng.random(n) < 0.02
    values[tail] *= 1.5 * (1 + rng.pareto(1.5, tail.sum()))
    return values


def test_a_target_probed_every_five_minutes_pages_on_steps_not_on_single_slow_probes() -> None:
    """The daemon's rows are single probes whatever the interval: a probe every 5 minutes is
    one probe, not a 5-minute aggregate, so its heavy tail weighs what it does at one a
    minute. Read as aggregates (what `detect` assumes of its files), the same probes paged
    about once a day; as probes, a step of 2x still pages within 5 probes."""
    per_day = 288
    healthy = [_heavy(seed, 6 * per_day) for seed in range(4)]
    as_probes = sum(len(_daemon_pages(v, 300.0)) for v in healthy)
    as_aggregates = sum(len(onsets(v, 300.0)) for v in healthy)
    assert as_probes <= 1 and as_aggregates >= 8, (as_probes, as_aggregates)
    for seed in range(4):
        values = _heavy(10 + seed, 6 * per_day)
        values[5 * per_day:] *= 2.0
        got = [i for i in _daemon_pages(values, 300.0) if i >= 5 * per_day]
        assert got and got[0] < 5 * per_day + 5, got


def test_a_daily_swing_probed_every_half_hour_does_not_page_on_its_second_morning() -> None:
    """Before the daily profile is ready to judge by (20 residuals: 10 hours of half-hourly
    probes after its first day) a rise pages only as a step; at one probe every 30 minutes
    the rows just before span hours of a 3x swing's rise, which looked like one. A rise the
    profile saw at the same hour the day before is not a step; a real one still pages."""
    per_day = 48
    for seed in range(6):
        values = lognormal(20 + seed, 3 * per_day, swing=3.0, per_day=per_day)
        assert _daemon_pages(values, 1800.0) == [], seed
    values = lognormal(30, 3 * per_day, swing=3.0, per_day=per_day)
    values[per_day + 4:] *= 2.0  # a step on the second morning, before the profile is ready
    got = _daemon_pages(values, 1800.0)
    assert got and per_day + 4 <= got[0] < per_day + 9, got


def test_a_nightly_job_pages_twice_then_is_the_series_own_but_a_larger_spike_still_pages() -> None:
    """One probe a minute, a 5- or 15-minute spike at the same time every night: the daily
    profile explains nothing else (the flat baseline judges the series), yet a spike it has
    seen at that time on earlier days is the series' own: it pages the first two nights
    (a failure that recurs once pages both times), then not; one twice as large as the
    nights before still pages."""
    per_day = 1440
    for seed, minutes in ((0, 5), (1, 15)):
        values = lognormal(40 + seed, 10 * per_day)
        for day in range(10):
            start = day * per_day + 180
            values[start:start + minutes] *= 4.0 if day < 9 else 8.0
        days = sorted({i // per_day for i in _daemon_pages(values, 60.0)})
        assert days == [0, 1, 9], (minutes, days)


def test_an_incident_that_recurs_at_the_same_time_the_next_day_pages_both_times() -> None:
    """A 20-minute 2x incident at the same time on days 1 and 2 (the profile has two earlier
    days when the second comes, one of them the first incident's): both page, each within
    5 probes."""
    per_day = 1440
    for seed in range(3):
        values = lognormal(50 + seed, 4 * per_day)
        for day in (1, 2):
            values[day * per_day + 600:day * per_day + 620] *= 2.0
        pages = _daemon_pages(values, 60.0)
        assert [i // per_day for i in pages] == [1, 2], (seed, pages)
        assert all(600 <= i % per_day < 605 for i in pages), (seed, pages)
