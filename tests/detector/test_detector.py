"""Detector: steps, stationary noise, frozen baselines, errors, FDR, persistence, direction."""

from __future__ import annotations

import asyncio
import sqlite3

import numpy as np
import pytest
from pydantic import ValidationError
from scipy.stats import false_discovery_control

from core.store import Store
from detector.config import DetectorConfig
from detector.core import benjamini_hochberg
from detector.service import STATE_INDEX, STATE_PREFIX, Detector
from detector.verdict import AnomalyVerdict
from tests.detector.factories import T0, TTFT, Feed, first_anomalous
from tests.factories import LoopTicker


def test_step_change_is_detected_within_a_few_probes() -> None:
    det = Detector(DetectorConfig())
    feed = Feed(seed=1)
    calm = feed.run(det, 300)
    assert not any(v.anomalous for ev in calm for v in ev.values())
    step = feed.run(det, 10, ttft_x=2.0)
    n = first_anomalous(step, TTFT)
    assert n is not None and n <= 5, n
    v: AnomalyVerdict = step[-1][TTFT]
    assert v.score >= 1.0 and v.q_value <= det.cfg.fdr_q
    assert 0.6 < v.effect < 1.5  # relative change of the median, ~ +100%
    assert v.baseline == pytest.approx(0.4, rel=0.15)
    assert v.since is not None and v.since >= T0 + 60.0 * 300
    assert det.labels["p/m/short"] == {"provider": "p", "model": "m", "probe": "short", "region": "r1"}


def test_stationary_heavy_tailed_noise_raises_no_alarm() -> None:
    det = Detector(DetectorConfig())
    # ~0.2 false pages per week at this noise (bench/detection.py): 2 days here
    evals = Feed(seed=2, sigma=0.12, tail=0.02).run(det, 3000)
    assert not [k for ev in evals for k, v in ev.items() if v.anomalous]
    scores = [ev[TTFT].score for ev in evals[200:]]
    assert max(scores) < 1.0 and min(scores) >= 0.0


def test_baseline_is_not_poisoned_by_a_long_anomaly() -> None:
    det = Detector(DetectorConfig())
    feed = Feed(seed=3)
    feed.run(det, 300)
    before = det.evaluate(now=T0 + 60.0 * feed.i)[TTFT].baseline
    slow = feed.run(det, 600, ttft_x=2.0)  # ten hours at twice the latency
    assert all(ev[TTFT].anomalous for ev in slow[10:])
    assert slow[-1][TTFT].baseline == pytest.approx(before, rel=0.02)  # frozen
    recovered = feed.run(det, 70)  # calm for exit_hold (1 h)
    assert not recovered[-1][TTFT].anomalous
    assert recovered[-1][TTFT].baseline == pytest.approx(before, rel=0.1)
    again = feed.run(det, 10, ttft_x=2.0)  # the old baseline still catches the same step
    n = first_anomalous(again, TTFT)
    assert n is not None and n <= 5


def test_error_burst_is_detected_by_the_binomial_test() -> None:
    det = Detector(DetectorConfig())
    feed = Feed(seed=4)
    calm = feed.run(det, 300)
    assert not any(ev[("p/m/short", "error")].anomalous for ev in calm)
    burst = feed.run(det, 20, error_rate=0.5)
    n = first_anomalous(burst, ("p/m/short", "error"))
    assert n is not None and n <= 10
    v = burst[-1][("p/m/short", "error")]
    assert v.effect > 0.1 and v.recent > v.baseline and v.p_value < 1e-3


def test_benjamini_hochberg_matches_scipy() -> None:
    rng = np.random.default_rng(5)
    p = np.concatenate([rng.uniform(size=40), rng.uniform(0, 1e-4, size=5)])
    assert benjamini_hochberg(list(p)) == pytest.approx(list(false_discovery_control(p)), rel=1e-9)


def test_many_series_do_not_multiply_false_alarms() -> None:
    models = tuple(f"m{i}" for i in range(25))
    det = Detector(DetectorConfig())
    feed = Feed(seed=6)
    evals = feed.run(det, 400, models=models)
    assert not [k for ev in evals for k, v in ev.items() if v.anomalous]
    # one model degrades: it alone is flagged, and its q-value accounts for the 125 series
    for _ in range(10):
        for m in models:
            det.observe(feed.probe(model=m, ttft_x=2.5 if m == "m3" else 1.0))
        last = det.evaluate(now=T0 + 60.0 * feed.i)
        feed.i += 1
    flagged = {k for k, v in last.items() if v.anomalous}
    assert ("p/m3/short", "ttft") in flagged
    assert {k[0] for k in flagged} == {"p/m3/short"}
    v = last[("p/m3/short", "ttft")]
    assert v.q_value >= v.p_value


def test_shutdown_save_stops_at_its_deadline_stalest_first(tmp_path) -> None:
    """At shutdown the daemon has seconds, and a week-old target takes ~0.1 s to encode:
    past the deadline the rest keep their last saved state (and stay dirty)."""
    import time

    store = Store(tmp_path / "state.db")
    det = Detector(DetectorConfig(), store=store)
    feed = Feed(seed=3)
    models = ("a", "b", "c")
    feed.run(det, 30, models=models)
    assert det.save() == 0  # no deadline: every target
    feed.run(det, 5, models=models)
    det._saved_at["p/b/short"] -= 100.0  # b was saved longest ago
    assert det.save(deadline=time.monotonic() - 1.0) == 2  # past it: one target, the stalest
    assert det._dirty == {"p/a/short", "p/c/short"}
    assert det.save(deadline=time.monotonic() + 60.0) == 0
    assert not det._dirty
    store.close()
    restored = Detector(DetectorConfig(), store=Store(tmp_path / "state.db"))
    restored.load()
    assert {t for t, _ in restored.series} == {"p/a/short", "p/b/short", "p/c/short"}


def test_save_load_roundtrip_through_store(tmp_path) -> None:
    store = Store(tmp_path / "state.db")
    det = Detector(DetectorConfig(), store=store)
    feed = Feed(seed=7)
    feed.run(det, 200)
    feed.run(det, 8, ttft_x=2.0)
    det.save()
    store.close()

    store2 = Store(tmp_path / "state.db")
    restored = Detector(DetectorConfig(), store=store2)
    restored.load()
    now = T0 + 60.0 * feed.i
    a, b = det.evaluate(now=now), restored.evaluate(now=now)
    assert a.keys() == b.keys()
    for key in a:
        assert b[key].anomalous == a[key].anomalous
        assert b[key].since == a[key].since
        assert b[key].n_baseline == a[key].n_baseline
        assert b[key].baseline == pytest.approx(a[key].baseline, rel=1e-4)
        assert b[key].p_value == pytest.approx(a[key].p_value, rel=1e-3)
    assert a[TTFT].anomalous
    assert restored.labels == det.labels
    # both keep judging the same way
    nxt = feed.probe(ttft_x=2.0)
    det.observe(nxt)
    restored.observe(nxt)
    assert restored.evaluate(now=now + 60)[TTFT].anomalous == det.evaluate(now=now + 60)[TTFT].anomalous

    restored.forget(set())
    assert restored.series == {} and restored.labels == {}
    assert store2.get_state("detector:p/m/short") is None
    empty = Detector(DetectorConfig(), store=store2)
    empty.load()
    assert empty.series == {}
    store2.close()


def test_output_tps_is_anomalous_when_it_falls_not_when_it_rises() -> None:
    key = ("p/m/short", "output_tps")
    up = Detector(DetectorConfig())
    feed = Feed(seed=8)
    feed.run(up, 300)
    faster = feed.run(up, 20, tps_x=2.0)
    assert not any(ev[key].anomalous for ev in faster)
    assert faster[-1][key].effect > 0.5

    down = Detector(DetectorConfig())
    feed = Feed(seed=8)
    feed.run(down, 300)
    slower = feed.run(down, 10, tps_x=0.5)
    n = first_anomalous(slower, key)
    assert n is not None and n <= 5
    assert slower[-1][key].effect < -0.3  # tokens/s fell by half
    assert slower[-1][("p/m/short", "itl")].anomalous  # itl rose by as much


def test_small_shift_below_min_effect_is_not_paged() -> None:
    det = Detector(DetectorConfig(min_effect=0.3))
    feed = Feed(seed=9, sigma=0.05, tail=0.0)  # +15% is very significant, but small
    # past the season's warm-up (a day), where a lasting shift keeps its partial score (in
    # the warm-up a shift that is no longer a step scores 0: see LatencySeries._rise)
    feed.run(det, 1500)
    evals = feed.run(det, 60, ttft_x=1.15)
    assert not any(ev[TTFT].anomalous for ev in evals)
    assert evals[-1][TTFT].p_value < 1e-6
    assert 0.0 < evals[-1][TTFT].score < 1.0


def test_config_is_strict() -> None:
    with pytest.raises(ValidationError):
        DetectorConfig(min_efect=0.3)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        DetectorConfig(metrics=("ttft", "tpot"))
    cfg = DetectorConfig.model_validate({"min_effect": "50%", "exit_hold": "10m"})
    assert cfg.min_effect == 0.5 and cfg.exit_hold == 600.0


async def test_save_async_copies_on_the_loop_while_probes_keep_arriving(tmp_path) -> None:
    # The daemon saves while probes keep landing: new series appear between batches (a
    # worker thread iterating the live dict used to die with "dictionary changed size").
    store = Store(tmp_path / "state.db")
    det = Detector(DetectorConfig(), store=store)
    feeds = {m: Feed(seed=i) for i, m in enumerate(f"m{i}" for i in range(120))}
    for m, f in feeds.items():
        for _ in range(30):
            det.observe(f.probe(model=m))
            f.i += 1

    async def arrivals() -> None:
        for i in range(40):
            det.observe(Feed(seed=1000 + i).probe(model=f"late{i}"))
            await asyncio.sleep(0)

    late = asyncio.create_task(arrivals())
    await det.save_async(slice_s=0.0)  # a loop step after every target
    await late
    saved = set(store.get_state("detector:index"))
    assert {f"p/m{i}/short" for i in range(120)} <= saved
    # what arrived during the save is dirty, and the next save writes it
    assert det._dirty and all(t.startswith("p/late") for t in det._dirty)
    await det.save_async()
    assert {f"p/late{i}/short" for i in range(40)} <= set(store.get_state("detector:index"))

    restored = Detector(DetectorConfig(), store=store)
    restored.load()
    assert restored.series.keys() == det.series.keys()
    store.close()


async def test_a_failed_save_keeps_the_targets_dirty(tmp_path) -> None:
    store = Store(tmp_path / "state.db")
    det = Detector(DetectorConfig(), store=store)
    det.observe(Feed(seed=3).probe())
    store.close()  # writes now fail
    with pytest.raises(sqlite3.ProgrammingError):
        await det.save_async()
    assert det._dirty == {"p/m/short"}


async def test_evaluate_async_hands_the_loop_back_and_agrees_with_evaluate() -> None:

    det, twin = Detector(DetectorConfig()), Detector(DetectorConfig())
    feed, feed2 = Feed(seed=11), Feed(seed=11)
    for d, f in ((det, feed), (twin, feed2)):
        for m in ("a", "b", "c"):
            for _ in range(150):
                d.observe(f.probe(model=m))
                f.i += 1
        for _ in range(8):
            d.observe(f.probe(model="b", ttft_x=2.0))
            f.i += 1
    now = T0 + 60.0 * feed.i
    async with LoopTicker() as ticker:
        got = await det.evaluate_async(now=now, slice_s=0.0)
    want = twin.evaluate(now=now)
    assert ticker.ticks >= len(det.series)  # the loop ran between series
    assert got.keys() == want.keys()
    assert {k for k, v in got.items() if v.anomalous} == {k for k, v in want.items() if v.anomalous} != set()
    for k in got:
        assert got[k].score == pytest.approx(want[k].score)

    # a reload that forgets a target mid-evaluation: its series get no verdict
    steps = det._evaluate_steps(now)
    next(steps)
    det.forget({"p/a/short", "p/b/short"})
    while True:
        try:
            next(steps)
        except StopIteration as done:
            out = done.value
            break
    assert {k[0] for k in out} == {"p/a/short", "p/b/short"}


def test_windows_are_durations_or_as_before_probe_counts() -> None:
    from detector.params import Span

    cfg = DetectorConfig.model_validate({"recent": "10m", "short_baseline": 240, "baseline_size": "1d",
                                         "baseline_min": "90m", "quarantine": "0s"})
    assert cfg.recent == Span(seconds=600.0) and cfg.short_baseline == Span(rows=240)
    assert cfg.baseline_size == Span(seconds=86400.0) and cfg.quarantine == Span(seconds=0.0)
    assert cfg.model_dump()["recent"] == "10m" and cfg.model_dump()["short_baseline"] == 240
    for bad in ({"recent": "5 parsecs"}, {"recent": 0}, {"recent": -3}, {"slow_window": True},
                {"baseline_min": "3h", "short_baseline": "2h"}):
        with pytest.raises(ValidationError):
            DetectorConfig.model_validate(bad)
    # the rows follow each series' measured interval: 10 minutes = 10 probes at 1/min, 2 at 5 min
    p = cfg.params()
    assert p.recent.count(60.0) == 10 and p.recent.count(300.0) == 2 and p.recent.count(3600.0) == 1


async def test_save_async_writes_what_save_writes_within_its_budget(tmp_path) -> None:
    # The running daemon's save spends at most its CPU budget a call, least recently saved
    # targets first; the rest stay dirty and are written by the next calls, byte for byte
    # what the shutdown save() writes.

    probes = []
    for i, m in enumerate(f"m{i}" for i in range(12)):
        f = Feed(seed=i)
        for _ in range(40):
            probes.append(f.probe(model=m))
            f.i += 1
    stores = [Store(tmp_path / f"{name}.db") for name in ("sync", "async")]
    sync, det = (Detector(DetectorConfig(), store=st) for st in stores)
    for d in (sync, det):
        for r in probes:
            d.observe(r)
    sync.save()
    await det.save_async(slice_s=0.0, budget_s=0.0)  # one target, then the budget is spent
    assert len(det._dirty) == 11
    calls = 1
    while det._dirty:
        await det.save_async(slice_s=0.0, budget_s=0.0)
        calls += 1
    assert calls == 12
    keys = [STATE_INDEX] + [STATE_PREFIX + t for t in sync.labels]
    assert len(keys) == 13
    for key in keys:
        sql = "SELECT value FROM kv WHERE key = ?"
        assert stores[1].read(sql, (key,)) == stores[0].read(sql, (key,)), key


def test_binomial_tail_is_scipys() -> None:
    # The error series' p-value without scipy in the daemon (17 MB of RSS for one function).
    from scipy.special import bdtrc

    from detector.core import binom_sf

    for n in (1, 2, 5, 10, 30, 120, 500, 2000):
        for k in range(0, n + 2, max(1, n // 60)):
            for q in (1e-9, 1e-6, 0.001, 0.005, 0.05, 0.2, 0.5, 0.9, 0.999999):
                want = float(bdtrc(k - 1, n, q)) if k > 0 else 1.0
                assert binom_sf(k, n, q) == pytest.approx(want, rel=1e-10, abs=1e-300), (n, k, q)


async def test_a_target_saved_recently_waits_for_a_later_save_but_not_for_shutdown(tmp_path) -> None:
    # Every probe re-encoding its target's state cost 5% of a probe at 1,000 targets: the
    # rolling save writes a target again only once its last save is `min_age` old.
    store = Store(tmp_path / "state.db")
    det = Detector(DetectorConfig(), store=store)
    feed = Feed(seed=5)
    det.observe(feed.probe())
    feed.i += 1
    await det.save_async(min_age=300.0)  # never saved: written at once
    first = store.get_state("detector:p/m/short")
    det.observe(feed.probe())
    feed.i += 1
    await det.save_async(min_age=300.0)
    assert det._dirty == {"p/m/short"} and store.get_state("detector:p/m/short") == first
    det._saved_at["p/m/short"] -= 301.0  # five minutes on
    await det.save_async(min_age=300.0)
    assert not det._dirty and store.get_state("detector:p/m/short") != first
    det.observe(feed.probe())
    feed.i += 1
    written = store.get_state("detector:p/m/short")
    assert det.save() == 0  # the shutdown save writes it whatever its age
    assert not det._dirty and store.get_state("detector:p/m/short") != written
    store.close()
