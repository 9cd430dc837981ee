"""Sliding-window latency distributions per series (target x metric), for quantile gauges
and threshold rules.

Each window (1m, 5m, 1h, and the window of every threshold rule, `require`d when the rules
load) is a ring of 6 time slices, so a query covers between 5/6 and all of the window. A slice keeps its values as an array of doubles while it is small (exact
quantiles for the 1-probe-a-minute series that dominate a monitor) and promotes itself
to an HDR histogram once it holds more than PROMOTE values (inter-token latencies of
frequent probes): memory stays bounded at 1,000 targets and accuracy is 1% where HDR is used.
"""

from __future__ import annotations

import math
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from hdrh.histogram import HdrHistogram

from core.result import ProbeResult

WINDOWS: dict[str, float] = {"1m": 60.0, "5m": 300.0, "1h": 3600.0}
QUANTILES: dict[str, float] = {"0.5": 0.50, "0.9": 0.90, "0.95": 0.95, "0.99": 0.99}
METRICS: tuple[str, ...] = ("ttft", "ttft_content", "e2e", "itl", "tpot", "output_tps")
SLICES = 6
# An HDR histogram (2 digits, 1 us .. 1 h) is 13 KB and records at ~3 us a value in
# Python; 1,024 values are 4 KB. At one 64-token probe a minute a 1h slice (10 minutes)
# gets ~630 inter-token gaps: below this it stays exact, cheaper and smaller (promoting
# at 256 cost 80 KB and ~0.2 ms of CPU per probe a target).
PROMOTE = 1024
# Values are kept as float32: ~7 significant digits, far finer than any latency we can
# measure (100 ns on a 1 s value), at half the memory of doubles. The 1h windows' inter-
# token gaps dominate: at 1,000 targets of one 64-token probe a minute the aggregator held
# 61 KB a target after an hour in doubles, 40 KB in float32. Read back, a value is
# rounded to the 7 digits float32 keeps (0.4 stays 0.4, not 0.4000000059604645).
_VALUES = "f"
_SCALE = 1_000_000  # seconds (or tokens/s) → integer micro-units for HDR
_HDR_LOW, _HDR_HIGH, _HDR_DIGITS = 1, 3_600 * _SCALE, 2


def _new_hdr() -> HdrHistogram:
    return HdrHistogram(_HDR_LOW, _HDR_HIGH, _HDR_DIGITS, word_size=4)


class _Slice:
    __slots__ = ("hdr", "start", "values")

    def __init__(self, start: float) -> None:
        self.start = start
        self.values: array[float] | None = array(_VALUES)
        self.hdr: HdrHistogram | None = None

    def extend(self, vs: Iterable[float]) -> None:
        """add() of each value, at once (a probe's 64 gaps land in one slice)."""
        if self.values is not None:
            self.values.extend(vs)
            if len(self.values) > PROMOTE:
                self.hdr = _new_hdr()
                for x in self.values:
                    self.hdr.record_value(_clamp(x))
                self.values = None
        else:
            assert self.hdr is not None
            record = self.hdr.record_value
            for v in vs:
                record(_clamp(v))

    def add(self, v: float) -> None:
        self.extend((v,))


def _f32(v: float) -> float:
    """A value read back from float32 storage, as the decimal it was stored from."""
    return float(f"{v:.7g}")


def _clamp(v: float) -> int:
    return min(max(int(v * _SCALE), _HDR_LOW), _HDR_HIGH)


@dataclass(frozen=True, slots=True)
class Summary:
    count: int
    mean: float
    min: float
    max: float

    def stat(self, name: str, quantile: Callable[[float], float | None]) -> float | None:
        if name == "mean":
            return self.mean
        if name == "max":
            return self.max
        if name == "min":
            return self.min
        if name.startswith("p"):
            return quantile(float(name[1:]) / 100)
        raise ValueError(f"unknown statistic {name!r}")


class WindowedDistribution:
    """Values over one sliding window of `length` seconds."""

    __slots__ = ("_slices", "length", "width")

    def __init__(self, length: float) -> None:
        self.length = length
        self.width = length / SLICES
        self._slices: list[_Slice] = []

    def add(self, v: float, now: float) -> None:
        start = now - (now % self.width)
        if not self._slices or self._slices[-1].start < start:
            self._slices.append(_Slice(start))
        self._slices[-1].add(v)
        self._expire(now)

    def add_many(self, vs: Iterable[float], now: float) -> None:
        """add() of each value at the same time `now`: one slice lookup and expiry."""
        start = now - (now % self.width)
        if not self._slices or self._slices[-1].start < start:
            self._slices.append(_Slice(start))
        self._slices[-1].extend(vs)
        self._expire(now)

    def _expire(self, now: float) -> None:
        cutoff = now - self.length
        while self._slices and self._slices[0].start + self.width <= cutoff:
            self._slices.pop(0)

    def _live(self, now: float) -> list[_Slice]:
        self._expire(now)
        return self._slices

    def quantiles(self, qs: Iterable[float], now: float) -> dict[float, float] | None:
        live = self._live(now)
        if not live:
            return None
        if all(s.values is not None for s in live):
            vals = sorted(v for s in live for v in s.values or ())
            if not vals:
                return None
            return {q: _f32(_exact(vals, q)) for q in qs}
        merged = _new_hdr()
        for s in live:
            if s.hdr is not None:
                merged.add(s.hdr)
            else:
                for x in s.values or ():
                    merged.record_value(_clamp(x))
        return {q: merged.get_value_at_percentile(q * 100) / _SCALE for q in qs}

    def summary(self, now: float) -> Summary | None:
        live = self._live(now)
        count = 0
        total = 0.0
        lo, hi = math.inf, -math.inf
        for s in live:
            if s.values is not None:
                if s.values:
                    count += len(s.values)
                    total += sum(s.values)
                    lo, hi = min(lo, _f32(min(s.values))), max(hi, _f32(max(s.values)))
            else:
                assert s.hdr is not None
                n = s.hdr.get_total_count()
                count += n
                total += s.hdr.get_mean_value() * n / _SCALE
                lo = min(lo, s.hdr.get_min_value() / _SCALE)
                hi = max(hi, s.hdr.get_max_value() / _SCALE)
        if not count:
            return None
        return Summary(count=count, mean=_f32(total / count), min=lo, max=hi)


def _name(seconds: float) -> str:
    return f"{seconds:g}s"


def _exact(sorted_vals: list[float], q: float) -> float:
    pos = (len(sorted_vals) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (pos - lo)


def values_of(result: ProbeResult, metric: str) -> Iterable[float]:
    """The samples a result contributes to `metric` (only successful probes count)."""
    if not result.ok:
        return ()
    if metric == "itl":
        return result.itls
    v = getattr(result, metric)
    return () if v is None else (v,)


class Aggregator:
    """Per target key ('provider/model/probe') and metric, one distribution per window."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._series: dict[tuple[str, str], dict[str, WindowedDistribution]] = {}
        self.labels: dict[str, dict[str, str]] = {}
        # Windows threshold rules evaluate over, beside the exported 1m/5m/1h: metric -> lengths.
        self._required: dict[str, set[float]] = {}
        # /metrics renders in a worker thread (a scrape of 1,000 targets takes seconds of
        # CPU); the windows expire slices on read, so every access takes this lock. The
        # scrape takes it once per series, so the loop never waits longer than one series.
        self._lock = threading.Lock()

    def observe(self, result: ProbeResult, at: float | None = None) -> None:
        """Add a result that completed at `at` (unix; default now). Replays go in time order."""
        with self._lock:
            self._observe(result, at)

    def _observe(self, result: ProbeResult, at: float | None) -> None:
        key = result.target
        self.labels[key] = result.labels
        now = self._clock() if at is None else at
        for metric in METRICS:
            vals = values_of(result, metric)
            if not vals:
                continue
            windows = self._series.get((key, metric))
            if windows is None:
                windows = {name: WindowedDistribution(length) for name, length in WINDOWS.items()}
                for length in self._required.get(metric, ()):
                    windows.setdefault(_name(length), WindowedDistribution(length))
                self._series[(key, metric)] = windows
            for w in windows.values():
                w.add_many(vals, now)

    def forget(self, keep: set[str]) -> None:
        """Drop series of targets no longer configured (reload)."""
        with self._lock:
            self._forget(keep)

    def _forget(self, keep: set[str]) -> None:
        for key, metric in list(self._series):
            if key not in keep:
                del self._series[(key, metric)]
        for key in list(self.labels):
            if key not in keep:
                del self.labels[key]

    def targets(self) -> list[str]:
        return sorted(self.labels)

    def require(self, metric: str, seconds: float) -> None:
        """Keep a window of exactly `seconds` for `metric` (a threshold rule's window), from
        now on for every target (it fills as probes arrive)."""
        if seconds in WINDOWS.values():
            return
        with self._lock:
            self._required.setdefault(metric, set()).add(seconds)
            for (_key, m), windows in self._series.items():
                if m == metric:
                    windows.setdefault(_name(seconds), WindowedDistribution(seconds))

    def window_for(self, seconds: float) -> str:
        """The window a query over `seconds` reads: exactly that one when kept (every rule's
        window is), else the next longer of 1m/5m/1h."""
        if any(seconds in lengths for lengths in self._required.values()):
            return _name(seconds)
        for name, length in WINDOWS.items():
            if seconds <= length:
                return name
        return "1h"

    def quantiles(self, target: str, metric: str, window: str, qs: Iterable[float]) -> dict[float, float] | None:
        w = self._series.get((target, metric), {}).get(window)
        if w is None:
            return None
        with self._lock:
            return w.quantiles(qs, self._clock())

    def stat(self, target: str, metric: str, stat: str, window_seconds: float) -> float | None:
        """A windowed statistic (p50, p95, p99, mean, max, min) for threshold rules."""
        w = self._series.get((target, metric), {}).get(self.window_for(window_seconds))
        if w is None:
            return None
        now = self._clock()
        with self._lock:
            s = w.summary(now)
            if s is None:
                return None

            def q(x: float) -> float | None:
                res = w.quantiles([x], now)
                return None if res is None else res[x]

            return s.stat(stat, q)

    def count(self, target: str, metric: str, window_seconds: float) -> int:
        w = self._series.get((target, metric), {}).get(self.window_for(window_seconds))
        if w is None:
            return 0
        with self._lock:
            s = w.summary(self._clock())
        return 0 if s is None else s.count

    def snapshot(self) -> list[tuple[str, str, str, dict[float, float], Summary]]:
        """(target, metric, window, {q: value}, summary) for every live series (scrape time)."""
        return list(self.iter_snapshot())

    def iter_snapshot(self) -> Iterator[tuple[str, str, str, dict[float, float], Summary]]:
        """snapshot() a series at a time: /metrics renders on the loop in slices, and the
        quantiles of 1,000 targets' windows are far more than one slice of work."""
        now = self._clock()
        qs = list(QUANTILES.values())
        with self._lock:
            series = list(self._series.items())
        for (key, metric), windows in series:
            with self._lock:
                out = []
                for name, w in windows.items():
                    if name not in WINDOWS:
                        continue  # a rule's own window: not exported
                    res = w.quantiles(qs, now)
                    summ = w.summary(now)
                    if res is not None and summ is not None:
                        out.append((key, metric, name, res, summ))
            yield from out
