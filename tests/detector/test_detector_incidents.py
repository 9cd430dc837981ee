"""Detector core: one page per incident (relearning, two-sided series, hold-off after a page)."""

from __future__ import annotations

import json

import numpy as np

from detector.core import LatencySeries
from tests.detector.factories import DAY, STEP, daily, raw_params, run

ROWS_PER_DAY = int(DAY / STEP)


def flat(rng: np.random.Generator, n: int, level: float = 20.0) -> np.ndarray:
    return level + 1.5 * rng.standard_normal(n)


def test_relearn_of_an_anomaly_that_is_already_over_keeps_the_old_baseline() -> None:
    # a 12 h step, then the old level again: at relearn_time (1 day) the anomaly is calm
    # (exit_hold, 2 days, has not run out yet), so it ends instead of making the mixture of
    # incident and recovery the new normal
    rng = np.random.default_rng(5)
    warm = 3 * ROWS_PER_DAY
    values = flat(rng, warm + 4 * ROWS_PER_DAY)
    values[warm:warm + ROWS_PER_DAY // 2] += 20.0
    series = LatencySeries(raw_params(relearn_time=DAY, exit_hold=2 * DAY), log_scale=False)
    pages = run(series, values[: warm + ROWS_PER_DAY + 12])
    assert len(pages) == 1 and warm <= pages[0] <= warm + 5
    assert not series.anomalous
    assert abs(series.status(1e-5).baseline - 20.0) < 1.0
    # the same step again still pages: the baseline's spread was not inflated by the incident
    again = warm + 3 * ROWS_PER_DAY
    values[again:again + 24] += 20.0
    more = run(series, values[warm + ROWS_PER_DAY + 12:], start=warm + ROWS_PER_DAY + 12)
    assert len(more) == 1 and again <= more[0] <= again + 5


def test_two_sided_series_pages_up_and_down_steps_with_the_effect_sign() -> None:
    rng = np.random.default_rng(6)
    warm = 2 * ROWS_PER_DAY
    for delta in (10.0, -10.0):
        values = flat(rng, warm + 60)
        values[warm:] += delta
        series = LatencySeries(raw_params(), log_scale=False, direction=0)
        pages = run(series, values)
        assert len(pages) == 1 and warm <= pages[0] <= warm + 5
        st = series.status(1e-5)
        assert np.sign(st.effect) == np.sign(delta)
        assert abs(st.recent - (20.0 + delta)) < 1.5


def test_two_sided_series_is_quiet_on_noise() -> None:
    values = flat(np.random.default_rng(7), 14 * ROWS_PER_DAY)
    assert run(LatencySeries(raw_params(), log_scale=False, direction=0), values) == []


def test_two_sided_seasonal_series_pages_once_for_a_missing_peak() -> None:
    # one series for both directions: while the peak is missing (an anomaly downwards) the
    # upward side does not learn the low day, so the next normal peak does not page
    rng = np.random.default_rng(8)
    values = daily(rng, 12 * ROWS_PER_DAY)
    day8 = 8 * ROWS_PER_DAY
    values[day8 + 8 * 12: day8 + 18 * 12] = 20.0 + 1.5 * rng.standard_normal(10 * 12)
    series = LatencySeries(raw_params(season=DAY, relearn_time=DAY), log_scale=False, direction=0)
    pages = [i for i in run(series, values) if i >= 3 * ROWS_PER_DAY]
    assert len(pages) == 1 and day8 + 8 * 12 <= pages[0] <= day8 + 8 * 12 + 5
    assert series.seasonal


def test_record_value_pages_once_only_when_the_record_test_is_on() -> None:
    # a lone value far beyond anything in the last days: no page by default (one slow probe
    # is not an incident), one page with the record test on, and the same height again a
    # day later is no longer a record (it has been seen)
    rng = np.random.default_rng(9)
    warm = 3 * ROWS_PER_DAY
    values = flat(rng, warm + 2 * ROWS_PER_DAY)
    values[warm] = 60.0
    values[warm + ROWS_PER_DAY + 30] = 60.0
    assert run(LatencySeries(raw_params(), log_scale=False, direction=0), values) == []
    series = LatencySeries(raw_params(record_margin=0.2, exit_hold=3600.0), log_scale=False, direction=0)
    assert run(series, values) == [warm]
    # downwards too, on a two-sided series
    values[warm + 2 * ROWS_PER_DAY - 10] = -20.0
    series = LatencySeries(raw_params(record_margin=0.2, exit_hold=3600.0), log_scale=False, direction=0)
    assert run(series, values) == [warm, warm + 2 * ROWS_PER_DAY - 10]


def test_novelty_quantile_keeps_a_frequent_level_from_paging() -> None:
    # bursts of 7 h a day (about 30% of the values) on a flat 20, each no higher than the
    # ones before: many sigmas above the median, but a level the baseline often holds
    rng = np.random.default_rng(10)
    values = flat(rng, 8 * ROWS_PER_DAY)
    for d in range(8):
        start = d * ROWS_PER_DAY + 37 * d % 100 + 60  # not at one time of day
        values[start:start + 84] += 34.0 - 2 * d
    late = 3 * ROWS_PER_DAY
    plain = LatencySeries(raw_params(exit_hold=3600.0), log_scale=False, direction=0)
    assert len([i for i in run(plain, values) if i >= late]) >= 3
    novel = LatencySeries(raw_params(novelty=0.95, exit_hold=3600.0), log_scale=False, direction=0)
    assert [i for i in run(novel, values) if i >= late] == []
    # a level beyond the bursts still pages
    values[-60:] += 60.0
    novel = LatencySeries(raw_params(novelty=0.95, exit_hold=3600.0), log_scale=False, direction=0)
    pages = [i for i in run(novel, values) if i >= late]
    assert len(pages) == 1 and pages[0] >= len(values) - 60


def test_record_window_and_downward_cusum_survive_a_restart() -> None:
    rng = np.random.default_rng(11)
    warm = 3 * ROWS_PER_DAY
    values = flat(rng, warm + 20)
    values[warm:] -= 4.0  # a fall under way at the restart (not a record: 2.7 sigma)
    values[-1] = 80.0  # and then a record
    p = raw_params(record_margin=0.5)
    live = LatencySeries(p, log_scale=False, direction=0)
    assert run(live, values[:warm + 2]) == []
    restored = LatencySeries(p, log_scale=False, direction=0)
    restored.load_state(json.loads(json.dumps(live.to_state())))
    assert np.allclose(restored.record_q, live.record_q, atol=1e-5)  # the state keeps 5 decimals
    assert restored.cusum_lo == live.cusum_lo > 0
    pages = run(restored, values[warm + 2:], start=warm + 2)
    assert pages == run(live, values[warm + 2:], start=warm + 2)
    assert len(pages) == 1 and pages[0] <= warm + 6  # the fall; the record comes while it is open


def _hourly_spikes(days: list[float], seed: int = 11) -> tuple[list[float], list[float], list[int]]:
    """30 days of calm hourly latency (sigma 0.1) and a one-hour 4x spike at each of `days`
    (at a different hour each time, so the daily profile cannot learn them): (stamps,
    values, the spikes' rows)."""
    rng = np.random.default_rng(seed)
    n = 30 * 24
    values = 0.5 * np.exp(0.1 * rng.standard_normal(n))
    rows = [int(d * 24) for d in days]
    for r in rows:
        values[r] *= 4.0
    return [1_700_000_000.0 + 3600.0 * i for i in range(n)], [float(v) for v in values], rows


def _onsets(stamps: list[float], values: list[float]) -> list[int]:
    from detector.replay import replay
    from detector.service import DetectorConfig

    return [i for i, (_, _, onset) in enumerate(replay(DetectorConfig(), stamps, values)) if onset]


def _paged_spikes(days: list[float]) -> list[float]:
    """The days of `days` whose spike paged (a chance onset elsewhere is not counted)."""
    stamps, values, spikes = _hourly_spikes(days)
    onsets = _onsets(stamps, values)
    return [d for d, r in zip(days, spikes, strict=True) if r in onsets]


def test_a_blip_that_recurs_pages_twice_then_is_the_series_own_habit() -> None:
    days = [8.1, 9.6, 10.85, 12.3, 13.5]
    assert _paged_spikes(days) == days[:2]


def test_a_failure_that_recurs_once_pages_both_times_and_an_old_blip_is_forgotten() -> None:
    assert _paged_spikes([8.1, 9.6]) == [8.1, 9.6]
    # the first blip is more than likelihood_memory (7 days) older than the second: only
    # the second and third are a habit, so the third still pages and the fourth does not
    days = [8.1, 17.6, 18.85, 20.3]
    assert _paged_spikes(days) == days[:3]


def test_a_habit_of_small_blips_does_not_hide_a_larger_spike() -> None:
    stamps, values, spikes = _hourly_spikes([8.1, 9.6, 10.85, 12.3])
    for r in spikes[:3]:
        values[r] = values[r - 1] * 1.6  # small blips (+60%)
    values[spikes[3]] = values[spikes[3] - 1] * 4.0
    onsets = _onsets(stamps, values)
    assert spikes[3] in onsets


def test_a_blip_kept_aside_survives_a_restart() -> None:
    """The first blip, waiting for a second, is in the saved state: after a reload the
    second still makes the habit."""
    from detector.core import decide
    from detector.service import DetectorConfig

    days = [8.1, 9.6, 10.85]
    stamps, values, spikes = _hourly_spikes(days)
    cfg = DetectorConfig()
    series = LatencySeries(cfg.params())
    onsets = []
    for i, (t, v) in enumerate(zip(stamps, values, strict=True)):
        if i == spikes[0] + 12:  # between the first blip and the second
            saved = json.loads(json.dumps(series.to_state()))
            assert saved["surprise"]["stash"]
            series = LatencySeries(cfg.params())
            series.load_state(saved)
        series.observe(t, v)
        st = series.status(cfg.fdr_q)
        was = series.anomalous
        decide(series, st, st.p_value, cfg.fdr_q, t)
        if series.anomalous and not was:
            onsets.append(i)
    assert [r for r in spikes if r in onsets] == spikes[:2]
