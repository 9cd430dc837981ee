from __future__ import annotations

import random

import numpy as np
import pytest

from core.aggregator import PROMOTE, Aggregator, WindowedDistribution
from core.result import Outcome
from tests.factories import result


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_small_windows_are_exact() -> None:
    w = WindowedDistribution(60)
    vals = [0.1, 0.2, 0.3, 0.4, 1.0]
    for i, v in enumerate(vals):
        w.add(v, 1000 + i)
    q = w.quantiles([0.5, 0.95], 1005)
    assert q is not None
    assert q[0.5] == pytest.approx(np.quantile(vals, 0.5))
    assert q[0.95] == pytest.approx(np.quantile(vals, 0.95))


def test_large_windows_use_hdr_within_one_percent() -> None:
    rng = random.Random(7)
    w = WindowedDistribution(60)
    vals = [rng.lognormvariate(-3.5, 0.6) for _ in range(PROMOTE * 20)]
    for i, v in enumerate(vals):
        w.add(v, 1000 + i * 50 / len(vals))
    q = w.quantiles([0.5, 0.99], 1050)
    assert q is not None
    for p in (0.5, 0.99):
        assert q[p] == pytest.approx(np.quantile(vals, p), rel=0.02)


def test_window_slides_old_values_out() -> None:
    clock = Clock()
    agg = Aggregator(clock)
    agg.observe(result(5.0))
    clock.t += 30
    agg.observe(result(0.5))
    assert agg.stat("p/m/short", "ttft", "max", 60) == 5.0
    clock.t += 61
    agg.observe(result(0.4))
    # 91 s later the 5.0 has left the 1m window (slices of 10 s), the 0.5 has not yet
    assert agg.stat("p/m/short", "ttft", "max", 60) == 0.5
    clock.t += 120
    assert agg.stat("p/m/short", "ttft", "max", 60) is None
    # the 5m and 1h windows still hold them all
    assert agg.stat("p/m/short", "ttft", "max", 300) == 5.0
    assert agg.stat("p/m/short", "ttft", "min", 3600) == 0.4
    clock.t += 400
    assert agg.stat("p/m/short", "ttft", "max", 300) is None
    assert agg.stat("p/m/short", "ttft", "max", 3600) == 5.0


def test_failed_probes_do_not_pollute_latency() -> None:
    agg = Aggregator(Clock())
    agg.observe(result(0.3))
    agg.observe(result(29.0, outcome=Outcome.TIMEOUT))
    assert agg.stat("p/m/short", "ttft", "max", 300) == 0.3
    assert agg.count("p/m/short", "ttft", 300) == 1


def test_itl_counts_every_gap_and_snapshot_has_all_windows() -> None:
    agg = Aggregator(Clock())
    agg.observe(result(0.3, itls=(0.01, 0.02, 0.03)))
    assert agg.count("p/m/short", "itl", 60) == 3
    snap = {(t, m, w) for t, m, w, _, _ in agg.snapshot()}
    assert ("p/m/short", "itl", "1h") in snap and ("p/m/short", "ttft", "1m") in snap


def test_forget_drops_removed_targets() -> None:
    agg = Aggregator(Clock())
    agg.observe(result(0.3, model="a"))
    agg.observe(result(0.3, model="b"))
    agg.forget({"p/a/short"})
    assert agg.targets() == ["p/a/short"]
    assert agg.stat("p/b/short", "ttft", "p50", 60) is None


def test_a_rule_window_is_read_as_named_not_rounded_up_to_a_minute() -> None:
    """A threshold rule with `window: 10s` sees the last 10 s, not the 1-minute window: a 4x
    TTFT degradation that ended 30 s ago is over for it (it was still "firing" at t=138 s)."""
    now = [0.0]
    agg = Aggregator(clock=lambda: now[0])
    agg.require("ttft", 10)
    for t in range(0, 120, 2):
        now[0] = float(t)
        agg.observe(result(2.0 if t < 75 else 0.5), at=now[0])
    now[0] = 106.0
    assert agg.stat(_key(), "ttft", "p95", 10) == 0.5
    assert agg.stat(_key(), "ttft", "p95", 60) == 2.0  # the minute still holds the degradation
    assert agg.count(_key(), "ttft", 10) <= 6
    # the rule's window is not exported as a quantile gauge
    assert {w for _t, _m, w, _q, _s in agg.snapshot()} == {"1m", "5m", "1h"}


def _key() -> str:
    return result(1.0).target


def test_a_window_required_after_probes_started_fills_from_then_on() -> None:
    now = [0.0]
    agg = Aggregator(clock=lambda: now[0])
    agg.observe(result(3.0), at=0.0)
    agg.require("ttft", 20)
    assert agg.count(_key(), "ttft", 20) == 0
    now[0] = 1.0
    agg.observe(result(1.0), at=1.0)
    assert agg.stat(_key(), "ttft", "max", 20) == 1.0


def test_an_hour_of_one_probe_a_minute_stays_small() -> None:
    """The aggregator's share of the daemon's memory at 1,000 targets (bench/capacity.py
    runs two minutes; this is the hour after): values are float32, so a target's 1h
    window of 64-token inter-token gaps is ~15 KB, not 30. Was 61 KB a target in doubles."""
    import dataclasses
    import gc
    import tracemalloc

    clock = Clock()
    agg = Aggregator(clock)
    rng = random.Random(3)
    base = result(0.3, itls=tuple(0.015 + rng.random() * 0.003 for _ in range(63)), output_tokens=64)
    n = 20
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _minute in range(70):
            for i in range(n):
                agg.observe(dataclasses.replace(base, model=f"m{i}"), at=clock.t + i * 60 / n)
            clock.t += 60
        gc.collect()
        per_target = (tracemalloc.get_traced_memory()[0] - before) / n
    finally:
        tracemalloc.stop()
    assert per_target < 45_000, f"{per_target / 1000:.1f} KB a target"
    # and the values read back as they went in
    assert agg.stat("p/m0/short", "ttft", "max", 3600) == 0.3
