"""Statistical core of the detector: one object per series, no I/O, no config objects.

Latency-like series (`LatencySeries`)
    Values are compared on an oriented scale `y` where higher is worse: `log(x)` for
    latencies, `-log(x)` for throughput (output_tps is bad when it falls), and the raw
    value for a `detect` series with zeros or negatives; a series may be two-sided (direction 0: an upward and a
    downward CUSUM, each component tests the side its statistic points to, p-values pay
    for the two sides; one series, so a fall is one incident and the other side never
    learns it). Two time scales:

    fast (steps): each probe's robust z-score against the newest `short_baseline` healthy
    probes, z = (y - median) / (1.4826 MAD), clipped to +-z_cap so one outlier weighs
    little, feeds a one-sided CUSUM S = max(0, S + z - k) with k = log(1 + design_effect)
    / (2 sigma): half the step we most want to catch quickly (+50%), at most z_cap / 2.
    The CUSUM is the fastest detector of a step of that size for a given false-alarm
    rate; its stationary tail under the null, exp(-2k(S + 0.583)) (Siegmund's overshoot
    correction, checked by simulation), is the p-value. A short baseline keeps a daily
    cycle from looking like a step.
    slow (creeps, which a short baseline would follow): the mean normal score of the
    ranks of the last `slow_window` probes within the whole baseline (`baseline_size`):
    a one-sided rank test, p = Phi(-sum z / sqrt(n)).
    The series' p-value is the stronger component's, times 2 (Bonferroni).

    Practical size: the median of the last `recent` (fast) or `slow_window` (slow)
    probes against the matching baseline median (a relative change for log scales,
    robust sigmas, raw_min_effect, for raw scales). A series enters the anomalous state when significant
    after BH (q <= fdr_q) AND large (effect >= min_effect): a majority of the recent
    window must have moved, so lone outliers never page. It leaves when the effect has
    stayed below exit_fraction x min_effect for exit_hold seconds.

    Likelihood gate (`likelihood`): the change must also be rare for this series, judged
    against its own history of single values' surprise (see _Surprise): a series whose
    probes often spike does not page on its usual bursts, a calm one pages on a burst of
    three slow probes.

    Time, not rows: every window is a Span, a duration turned into rows at the series' own
    measured interval (_Interval: the median of its recent gaps), with row floors where the
    statistics need them. The CUSUM clips each probe at z_cap (one slow probe is not an
    incident); a row that is the whole `recent` window on its own (5-minute or hourly rows)
    may weigh the time it covers (_cap), so one hourly row far off is an hour of trouble
    (aggregates only: a series of single probes, the daemon's at any interval, weighs
    each at z_cap and takes at least 3 for its recent level);
    a row spanning 30 probes' time or more is also judged alone, by the normal tail of its
    z (a mean of that many probes is near normal; a 5-minute row is not), and as a record
    (_record): beyond the range of the last 14 days by a quarter of its reach above the
    median (more while the window is young: a chance record must be as rare as the
    likelihood level), and the practical size above the short baseline, pages on its own (an hourly
    row beyond all of two weeks is news even where the likelihood gate, with a few days of
    history, cannot certify how rare it is). The level is a
    false-alarm rate per probe interval: a row spanning k of them is one look where the
    daemon takes k, so its p-values count 1/k (as many false pages a day at any row size).
    Practical size: min_effect, or for a calm series min_effect_sigmas of its own robust
    sigmas if that is less (a series that barely moves pages on a change large for it).

    Seen before (single probes, flat mode, _seen): from the third day a level within 1.5x
    of what the daily profile's bins saw at that time on earlier days (two of them, or
    the median of more) is the series' own (a nightly job), where the profile is not
    otherwise chosen to judge by.

    Two older options, off by default:
    novelty (a quantile q): the recent median must also be beyond the q-quantile (below
    1 - q for a fall) of everything seen in the record window (or of the baseline without
    one; of the residuals in seasonal mode).
    record test (record_margin > 0): one value beyond the range of the last
    record_window values by record_margin x (edge - median) pages on its own, on every row
    and without the practical size (the aggregate rows' record test above, by the option's
    rules).

Error series (`ErrorSeries`)
    0/1 per probe. Exact one-sided binomial tests of the errors in a few trailing windows
    against the baseline rate (smoothed by a small prior so a spotless baseline does not
    make one error significant), Bonferroni over the windows.

Seasonal mode (`season` > 0; a day by default)
    Healthy values are also kept by phase of the period (`season_bins` bins, the last
    `season_periods` periods). Each value is standardised against its phase's history
    from earlier periods, u = (y - median) / (1.4826 MAD) over its bin and its neighbours
    (as many as the row interval spans), and the fast and slow tests above run on u
    against the last `short_baseline` healthy u. A series uses this mode only while, on
    healthy data, the residuals' mean absolute deviation is below `season_gain` x the flat
    long baseline's. Until the seasonal model has `season_min_periods` of history and
    `baseline_min` residuals it cannot tell a daily cycle from a creep: the creep test
    waits, and the season (not the baseline) learns from everything meanwhile.

Baselines learn only from samples that have waited `quarantine` probes and only while the
series is healthy: the quarantine is emptied when an anomaly starts (its samples are the
onset) and when it ends, so nothing from an anomalous period enters the baseline. A change
that lasts `relearn_time` seconds (or `relearn_after` probes) is accepted as the new normal:
the anomaly resolves and the baseline is rebuilt from its newest values, unless the anomaly
is already calming down (its effect small, not yet for exit_hold): then it is over, not a
new normal, and it just resolves with the old baseline (learning the mixture of incident
and recovery would page again on the return to the old level).
"""

from __future__ import annotations

import itertools
import math
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from detector.params import Params, Span

_ND = NormalDist()
_MAD_TO_SIGMA = 1.4826
_P_FLOOR = 1e-300
_RES_FLOOR = 0.05  # floor for the spread of standardised residuals (about 1 when the model fits)
_OVERSHOOT = 0.583  # E[overshoot] of a Gaussian random walk: P(S > s) ~ exp(-2k(s + 0.583))


def normal_score(u: float) -> float:
    return _ND.inv_cdf(min(max(u, 1e-12), 1.0 - 1e-12))


def benjamini_hochberg(pvalues: list[float]) -> list[float]:
    """BH-adjusted q-values (step-up, monotone), in the input order."""
    m = len(pvalues)
    order = sorted(range(m), key=pvalues.__getitem__)
    q = [0.0] * m
    running = 1.0
    for rank in range(m, 0, -1):  # from the largest p down: q is the running minimum
        i = order[rank - 1]
        running = min(running, float(pvalues[i]) * m / rank)
        q[i] = running
    return q


_MIN_SHORT = 30  # fewest rows a baseline's median and spread are taken from
_MIN_READY = 20  # fewest baseline rows before any verdict
_MIN_SLOW = 3  # fewest rows of the creep test
# the rows just before the `recent` window that a rise is judged against (see _rise): 50
# minutes (a daily cycle's rise moves the median of 50 minutes of 1-minute probes by a
# sixth of the practical size at most), at least 5 rows (5-minute and hourly rows)
_RISE_SPAN = Span(3000.0)
_RISE_MIN_ROWS = 5
_GAPS = 31  # recent gaps the row interval is the median of
_DEFAULT_DT = 60.0  # assumed interval until the series has shown one gap
PROBE_INTERVAL = 60.0  # the daemon's probe cadence: a row this long or shorter is one probe
# a row that spans this many probes' time is judged on its own by a normal tail: its noise is
# a mean's (the central limit theorem's usual n >= 30), while a 5-minute row's is still the
# probes' heavy tail (the normal tail paged on it: 51.9 -> 40.7 on NAB's 5-minute files)
_ROW_TEST_PROBES = 30
_HIST_WIDTH = 0.05  # surprise histogram: bins of log(1 + z) ...
_HIST_BINS = 140  # ...up to 7 (z ~ 1100), the last one open
_SURPRISE_SD_FLOOR = 0.05  # log(1 + z) units: a perfectly regular series still needs a clear change
_SURPRISE_MIN = 20  # rows of a series' own history before it is judged against it
_HIST_REFRESH = 1  # learnt rows between refreshes of the surprise histogram's tail sums
# two blips are alike when their largest departures from the baseline are within 1.5x of
# each other (a 4x spike and a 3x one; on the raw scale, 12 and 8 robust sigmas)
_HABIT_ALIKE = math.log(1.5)
# a habit's rows are learnt as this much more surprising than they were (log(1 + z): z up
# to 1.65x): the same spike's z moves as much with the baseline's spread from day to day,
# and the next one just beyond both learnt would be beyond everything (judged by the fit
# to the calm rows, and paged)
_HABIT_SLACK = 0.5
_BLIP_ROWS = 64  # rows of a blip kept, at most (a blip is short; the rest are calm rows)
# a blip: calm again within slow_window, or this many rows (hourly rows: 6 hours; the rows
# after an hour-long spike are often a little high still)
_BLIP_MIN_ROWS = 6
_SCAN_MIN = 5  # rows the likelihood scan looks back over, at least
# probes the `recent` window holds at least when every row is one probe (a target probed
# every 5 minutes or more rarely): its median is then that of 3 probes, so one slow probe is
# not a recent level, and the rules for a row that is the whole window (_cap, the unclipped
# surprise) never apply to single probes (at one every 5 minutes: 3 onsets in 12 healthy months against 3 at one
# a minute, and every step of +50% or more paged within 5 probes)
_RECENT_PROBES = 3
# a row that spans _ROW_TEST_PROBES probes' time or more (half-hourly, hourly aggregates) also
# pages as a record (see _record): beyond everything of the last two weeks by a quarter of
# that range's reach above its median (more while the window is young), and by the practical
# size above the baseline
_AGG_RECORD_SPAN = Span(14 * 86400.0)
_AGG_RECORD_MARGIN = 0.25
_RECORD_LEVEL_SPAN = 30 * 86400.0  # the chance record's rarity without the likelihood gate


# Windows of values are float arrays, not deques: a deque of floats is a pointer and a
# float object (32 bytes) a value plus a 760-byte block even when empty, a deque of
# (t, y) tuples ~100 bytes a row; an array is 8 bytes a value (64 when empty). At 1,000
# targets that was ~0.5 GB of a week-old detector. Dropping the oldest value of an array
# is a memmove of at most a few KB, cheaper than the float objects it saves. The per-row
# paths append and `del a[0]` inline: a helper function per window and row was ~10% of
# `detect`'s CPU.
def _trim(a: array[Any] | bytearray, cap: int) -> None:
    """Keep the newest `cap` values (after the window shrank)."""
    if len(a) > cap:
        del a[: len(a) - cap]


class _Pairs:
    """(t, y) rows in arrival order, as two float arrays (16 bytes a row). Hot paths
    take len(rows.t): a Python __len__ is a call, len of an array is not."""

    __slots__ = ("t", "y")

    def __init__(self, rows: list[tuple[float, float]] | None = None) -> None:
        self.t = array("d")
        self.y = array("d")
        for t, y in rows or ():
            self.t.append(t)
            self.y.append(y)

    def __len__(self) -> int:
        return len(self.t)

    def append(self, t: float, y: float) -> None:
        self.t.append(t)
        self.y.append(y)

    def popleft(self) -> tuple[float, float]:
        t, y = self.t[0], self.y[0]
        del self.t[0]
        del self.y[0]
        return t, y

    def clear(self) -> None:
        # in place (the per-row paths hold the arrays); emptied, an array frees its buffer
        del self.t[:]
        del self.y[:]

    def rows(self) -> list[tuple[float, float]]:
        return list(zip(self.t, self.y, strict=True))


class _Interval:
    """The series' row interval: the median of its last _GAPS positive gaps (robust to an
    outage or a burst of retries), _DEFAULT_DT before it has any."""

    __slots__ = ("gaps", "last", "value")

    def __init__(self) -> None:
        self.gaps = array("d")  # the newest _GAPS
        self.last: float | None = None
        self.value = _DEFAULT_DT

    def see(self, t: float) -> bool:
        """Note a row at t; True when the interval changed."""
        last, self.last = self.last, t if self.last is None else max(self.last, t)
        if last is None or t <= last:
            return False
        gap = t - last
        if len(self.gaps) == _GAPS:
            same = self.gaps[0] == gap  # a regular series: the same gap in and out
            del self.gaps[0]
            self.gaps.append(gap)
            if same:
                return False
        else:
            self.gaps.append(gap)
        g = sorted(self.gaps)
        value = (g[(len(g) - 1) // 2] + g[len(g) // 2]) / 2
        changed = value != self.value
        self.value = value
        return changed

    def to_state(self) -> list[float]:
        return [round(g, 3) for g in self.gaps]

    def load(self, gaps: list[float], last: float) -> None:
        self.gaps = array("d", (float(g) for g in gaps if float(g) > 0))
        _trim(self.gaps, _GAPS)
        self.last = last or None
        if self.gaps:
            g = sorted(self.gaps)
            self.value = (g[(len(g) - 1) // 2] + g[len(g) // 2]) / 2


class _Surprise:
    """How unusual the series' recent rows are for this series (judged against itself).

    Each row's surprise is log(1 + z+), z the robust z-score of the row against the series'
    own reference (the short baseline, or the seasonal residuals), clipped like the CUSUM's,
    z+ its adverse part (|z| two-sided). The series' own distribution of single rows'
    surprise is an exponentially decayed histogram (time constant `likelihood_memory`)
    learnt from healthy rows once they leave the quarantine. The recent window of n rows is
    then a scan over its last n rows (the `recent` window, at least _SCAN_MIN rows): for k
    from a majority of the `recent` window to n, the chance that k of n independent rows of
    this series are at least as surprising as the window's k-th most surprising one (a
    binomial tail at that level's own frequency q), Bonferroni over the k. So three extreme
    probes of five page on a series whose single probes are seldom extreme (q ~ 0.1%:
    1e-8) and not on one where 2% of probes are (1e-4): its usual bursts are chance; a step
    that persists passes on either as its rows accumulate. Where one row is the whole
    `recent` window (5-minute or hourly rows) one row beyond the series' habits is enough,
    and a few in a row are more than enough.
    An anomaly's rows are not learnt, except a blip's that recurs (see release): a habit
    becomes the series' own after it has paged twice.
    (The idea of the anomaly likelihood HTM and CAD OSE put after their raw scores on NAB:
    a score judged against the series' own history of scores, done our own way.)"""

    __slots__ = ("_fresh", "_n", "_p", "_pot", "_stale", "_suffix", "blip", "hist", "inc", "kmin", "mean", "pending",
                 "recent", "stash", "stash_peak", "stash_t", "total", "var", "weight")

    def __init__(self) -> None:
        self.recent = array("d")  # the newest _n rows' surprise
        self._n = _SCAN_MIN
        self.kmin = 1  # a majority of the `recent` window
        self.pending = _Pairs()  # (t, surprise) not yet learnt
        self.blip = array("d")  # surprise of the current anomaly's rows (see hold)
        self.stash = array("d")  # ...and of the last blip's, until another comes (see release)
        self.stash_t = 0.0
        self.stash_peak = 0.0  # its largest departure from the baseline (log scale: a ratio)
        self.weight = 0.0  # effective number of rows in the histogram
        self._p: float | None = None  # None until the histogram has _SURPRISE_MIN rows
        self._fresh = True  # _p is up to date with `recent` and the histogram
        self._stale = 0  # rows learnt since the cached tail sums were made
        self.hist = array("d", bytes(8 * _HIST_BINS))  # decayed mass of learnt rows' surprise by bin
        self.total = 0.0
        self.inc = 1.0  # the newest row's mass (grows instead of decaying all the others)
        self.mean = 0.0  # exponentially weighted mean and variance of the same rows
        self.var = 0.0
        # mass at or above each bin, built for a scan and dropped after it: a list of 140
        # floats is 4.5 KB a series, and a row that learns (most do) makes it stale anyway
        self._suffix: list[float] | None = None
        self._pot: tuple[float, float] | None = None  # (top decile's edge, mean excess) (cached)

    def resize(self, n: int) -> None:
        self.kmin = (n + 1) // 2
        self._n = max(n, _SCAN_MIN)
        _trim(self.recent, self._n)

    def see(self, t: float, z: float) -> None:
        s = math.log1p(max(z, 0.0))
        self.recent.append(s)
        if len(self.recent) > self._n:
            del self.recent[0]
        self.pending.t.append(t)
        self.pending.y.append(s)
        self._fresh = False

    def ready(self) -> bool:
        return self.weight >= _SURPRISE_MIN or self._p is not None

    @property
    def p(self) -> float | None:
        """The scan's p-value (None before _SURPRISE_MIN rows of history), computed when
        asked: a calm row's verdict never needs it."""
        if not self._fresh:
            self._fresh = True
            self._p = self._scan() if self.weight >= _SURPRISE_MIN else self._p
            self._suffix = None
        return self._p

    def _scan(self) -> float:
        r = sorted(self.recent, reverse=True)
        n = len(r)
        ks = range(min(self.kmin, n), n + 1)
        sd = max(math.sqrt(self.var), _SURPRISE_SD_FLOOR)
        best = 1.0
        for k in ks:
            # within what the history has seen, its own frequency (or a normal fit's, when
            # larger); beyond all of it, a fit says how rare (it can certify rarities a
            # short history cannot): the smaller of a normal fit and the top decile's own
            # exponential decay (a normal fit of a two-humped history, a quantised series'
            # usual dips, would call a row 17x off routine)
            s_k = r[k - 1]
            tail = self._tail(s_k)
            fit = _ND.cdf(-(s_k - self.mean) / sd)
            if tail <= 0.0:  # beyond everything the history holds
                edge, excess = self._peaks()
                if s_k > edge:
                    fit = min(fit, 0.1 * math.exp(-(s_k - edge) / max(excess, _HIST_WIDTH)))
            best = min(best, _binom_tail(n, k, max(tail, fit)))
        return min(1.0, best * len(ks))

    def _tail(self, s: float) -> float:
        if self.total <= 0:
            return 1.0
        if self._suffix is None or self._stale >= _HIST_REFRESH:
            # refreshed every few learnt rows: one row moves the tails by 1 / weight
            self._stale = 0
            self._suffix = list(itertools.accumulate(reversed(self.hist)))[::-1]
            self._pot = None
        return self._suffix[_bin(s)] / self.total

    def _peaks(self) -> tuple[float, float]:
        """Peaks over the top decile (after _tail): its lower edge and mean excess."""
        if self._pot is None:
            suffix = self._suffix
            assert suffix is not None
            top = 0.1 * self.total
            b = next((i for i in range(_HIST_BINS - 1, -1, -1) if suffix[i] >= top), 0)
            edge = b * _HIST_WIDTH
            above = suffix[b]
            excess = sum(self.hist[i] * ((i + 0.5) * _HIST_WIDTH - edge) for i in range(b, _HIST_BINS))
            self._pot = (edge, excess / above if above > 0 else 0.0)
        return self._pot

    def settle(self, t: float, learn: bool, decay: float) -> None:
        """The row at t left the quarantine: learn the rows up to it (when they joined the
        baseline: an incident never teaches itself) or set them aside (see hold)."""
        qt, qs = self.pending.t, self.pending.y
        while qt and qt[0] <= t:
            s = qs[0]
            del qt[0], qs[0]
            if learn:
                self._learn(s, decay)
            elif len(self.blip) < _BLIP_ROWS:
                self.blip.append(s)

    def hold(self) -> None:
        """An anomaly starts: the rows not yet learnt are set aside with its own."""
        self.blip.extend(self.pending.y[-_BLIP_ROWS:])
        self.pending.clear()

    def release(self, blip: bool, peak: float, t: float, memory: float, decay: float) -> None:
        """The anomaly ended. If it was a blip (calm again within `slow_window`), the series
        may have a habit: one blip is kept aside, and when a second like it (its largest
        departure `peak` within _HABIT_ALIKE of the first's) comes within `memory`, both are
        learnt, so that the third like them is judged as the series' own (a nightly job's
        spike pages twice, not every night). One earlier incident is never learnt: a
        failure that recurs once still pages both times, and a blip unlike the one kept
        aside (a chance blip of noise before a spike) takes its place."""
        if blip and self.blip:
            if self.stash and t - self.stash_t <= memory and abs(peak - self.stash_peak) <= _HABIT_ALIKE:
                for s in itertools.chain(self.stash, self.blip):
                    self._learn(s + _HABIT_SLACK, decay)
                del self.stash[:]
            else:
                self.stash = array("d", self.blip)
                self.stash_t = t
                self.stash_peak = peak
        del self.blip[:]

    def _learn(self, s: float, decay: float) -> None:
        self.inc /= decay
        if self.inc > 1e150:  # rescale before it overflows
            self.hist = array("d", (h / self.inc for h in self.hist))
            self.total /= self.inc
            self.inc = 1.0
        self.hist[_bin(s)] += self.inc
        self.total += self.inc
        self._stale += 1
        self._fresh = False
        self.weight = self.weight * decay + 1.0
        a = 1.0 / self.weight
        d = s - self.mean
        self.mean += a * d
        self.var = (1.0 - a) * (self.var + a * d * d)

    def to_state(self) -> dict[str, Any]:
        st: dict[str, Any] = {
            "recent": [round(v, 5) for v in self.recent], "w": self.weight, "p": self.p,
            "mean": self.mean, "var": self.var,
            "pending": [[t, round(a, 5)] for t, a in self.pending.rows()],
            "hist": [h / self.inc for h in self.hist],
        }
        if self.blip:  # mid-anomaly
            st["blip"] = [round(v, 5) for v in self.blip]
        if self.stash:  # a blip waiting for a second
            st["stash"] = [round(v, 5) for v in self.stash]
            st["stash_t"] = self.stash_t
            st["stash_peak"] = self.stash_peak
        return st

    def load(self, st: dict[str, Any] | None) -> None:
        if not st:
            return
        self.recent.extend(float(v) for v in st.get("recent", []))
        _trim(self.recent, self._n)
        self.weight = float(st.get("w", 0.0))
        self.mean = float(st.get("mean", 0.0))
        self.var = float(st.get("var", 0.0))
        p = st.get("p")
        self._p = None if p is None else float(p)
        self.pending = _Pairs([(float(t), float(a)) for t, a in st.get("pending", [])])
        self.blip = array("d", (float(v) for v in st.get("blip", [])[:_BLIP_ROWS]))
        self.stash = array("d", (float(v) for v in st.get("stash", [])[:_BLIP_ROWS]))
        self.stash_t = float(st.get("stash_t", 0.0))
        self.stash_peak = float(st.get("stash_peak", 0.0))
        hist = array("d", (float(h) for h in st.get("hist", [])))
        if len(hist) == _HIST_BINS:
            self.hist, self.total, self.inc = hist, sum(hist), 1.0
            self._suffix = None


def _binom_tail(n: int, k: int, q: float) -> float:
    """P(X >= k) for X ~ Binomial(n, q), n small (the scan's few rows)."""
    if q >= 1.0:
        return 1.0
    return sum(math.comb(n, j) * q ** j * (1.0 - q) ** (n - j) for j in range(k, n + 1))


def binom_sf(k: int, n: int, q: float) -> float:
    """P(X >= k) for X ~ Binomial(n, q), what scipy.special.bdtrc(k - 1, n, q) gives
    (tests/detector/test_detector.py), so that the daemon does not load scipy (17 MB of RSS) for
    one function. The smaller tail is summed from its largest term outwards (terms only
    shrink there, all positive: no cancellation); above the mean that is the answer,
    below it the answer is 1 minus the lower tail."""
    if k <= 0 or q >= 1.0:
        return 1.0
    if k > n or q <= 0.0:
        return 0.0
    upper = k > n * q
    j = k if upper else k - 1
    term = math.exp(math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1)
                    + j * math.log(q) + (n - j) * math.log1p(-q))
    odds = q / (1.0 - q)
    total = 0.0
    while term > 0.0 and 0 <= j <= n:
        total += term
        if term < total * 1e-17:
            break
        if upper:
            term *= (n - j) / (j + 1) * odds
            j += 1
        else:
            term *= j / (n - j + 1) / odds
            j -= 1
    return min(1.0, total) if upper else max(0.0, 1.0 - total)


def _bin(avg: float) -> int:
    return min(int(avg / _HIST_WIDTH), _HIST_BINS - 1)


@dataclass(slots=True)
class Status:
    """What one series says at one evaluation (before BH)."""

    p_value: float
    effect: float  # reported effect (relative median change / error-rate difference)
    effect_ratio: float  # oriented effect / minimum effect (>= 1: practically large)
    exit_ok: bool  # True when the effect is small enough to leave the anomalous state
    baseline: float
    recent: float
    n_baseline: int
    n_recent: int
    ready: bool
    # the newest value against the range of everything seen lately (record_margin; 0 when
    # off): >= 1 when it is beyond that range by the margin, a page without a significance test
    record_ratio: float = 0.0


class _Ranked:
    """A sorted multiset with its median and robust spread (for rank scores); a float
    array, 8 bytes a value where a list held a pointer and a float object (32)."""

    __slots__ = ("med", "sigma", "values")

    def __init__(self) -> None:
        self.values = array("d")
        self.med = 0.0
        self.sigma = 1.0

    def add(self, y: float) -> None:
        s = self.values
        s.insert(bisect_right(s, y), y)  # insort on an array calls insert by name: slower

    def remove(self, y: float) -> None:
        del self.values[bisect_left(self.values, y)]

    def refresh(self, sigma_floor: float, spread: bool = True) -> None:
        s = self.values
        if not s:
            return
        self.med = _median_sorted(s)
        if spread:
            self.sigma = max(_MAD_TO_SIGMA * _mad_sorted(s, self.med), sigma_floor)

    def l1(self) -> float:
        """Mean absolute deviation from the median (does not collapse on two-level series)."""
        s = self.values
        n = len(s)
        if n == 0:
            return 0.0
        cut = bisect_left(s, self.med)
        return (sum(s[cut:]) - sum(s[:cut]) - self.med * (n - 2 * cut)) / n

    def score(self, y: float, cap: float, extrapolate: bool) -> float:
        """Normal score of y's mid-rank (optionally a robust z beyond the range), within +-cap."""
        s = self.values
        m = len(s)
        if m == 0:
            return 0.0
        lo = bisect_left(s, y)
        # ties are rare: one look instead of a second search (each look at an array
        # makes a float object)
        hi = lo if lo == m or s[lo] != y else bisect_right(s, y, lo)
        z = normal_score(((lo + hi) / 2 + 0.5) / (m + 1))
        if extrapolate and (lo == m or hi == 0):
            zr = (y - self.med) / self.sigma
            z = max(z, zr) if zr > 0 else min(z, zr)
        return max(min(z, cap), -cap)


def _median_sorted(s: Sequence[float]) -> float:
    n = len(s)
    return (s[(n - 1) // 2] + s[n // 2]) / 2


def _kth_deviation(s: Sequence[float], cut: int, med: float, k: int) -> float:
    """k-th smallest (0-based) |v - med| over sorted s, where s[:cut] < med <= s[cut:].

    The deviations below (med - s[cut - 1 - i]) and above (s[cut + j] - med) the median are
    two sorted runs; a binary search on how many come from the first: O(log n)."""
    na, nb = cut, len(s) - cut
    lo, hi = max(0, k + 1 - nb), min(k + 1, na)
    while lo < hi:
        i = (lo + hi) // 2
        j = k + 1 - i
        if j > 0 and i < na and med - s[cut - 1 - i] < s[cut + j - 1] - med:
            lo = i + 1
        else:
            hi = i
    j = k + 1 - lo
    a = med - s[cut - lo] if lo > 0 else -math.inf
    b = s[cut + j - 1] - med if j > 0 else -math.inf
    return max(a, b)


def _mad_sorted(s: Sequence[float], med: float) -> float:
    """Median absolute deviation of a sorted list from med, without sorting the deviations."""
    n = len(s)
    cut = bisect_left(s, med)
    return (_kth_deviation(s, cut, med, (n - 1) // 2) + _kth_deviation(s, cut, med, n // 2)) / 2


_NO_STATS: array[float] = array("d")  # a bin with no value in the periods read (shared, never changed)
_SPREAD_BINS = 6  # bins either side the season's spread is taken over, at least
# median(MAD of n normal values) x this = the population's MAD (simulated); 1 beyond
_MAD_BIAS = (0.0, 0.0, 1.41, 1.87, 1.49, 1.34, 1.27, 1.21, 1.18, 1.15, 1.13, 1.12, 1.11, 1.1, 1.09, 1.08, 1.0)


class _Season:
    """A profile by phase of a period (a day, a week): the value expected at this phase.

    Kept as summaries, not values: per period and phase bin the median and MAD (two float32)
    and count (a byte, at most 255: only up to 16 matters, see _MAD_BIAS) of that bin's
    values, filled from a buffer of the bin being observed. A week of 1-minute probes was
    10,080 values of 16 bytes per series (1.3 MB per target); now a day of 288 bins is
    2.6 KB, whatever the row interval. The expectation at t is the median of
    the bin medians in t's bin and its neighbours (as many as the row interval spans) from
    earlier passes (older than half a period, so today's values never explain themselves),
    its spread the root sum of squares of the typical within-bin MAD (corrected for the
    few values a bin may hold) and the MAD of the bin medians (day-to-day variation; it
    also holds some within-bin noise, so the spread errs large); answers are remembered until
    a bin of an earlier pass changes (see `last`), a bin's summary until the bin changes."""

    __slots__ = ("buf", "buf_key", "counts", "keep", "last", "nbins", "old_closes", "period", "periods", "stats",
                 "t0", "tmax", "version", "width")

    def __init__(self, period: float, nbins: int, periods: int) -> None:
        self.period = period
        self.nbins = nbins
        self.width = period / nbins
        self.keep = periods
        # period index -> [median, MAD] x bins (nan: no value), periods + 1 of them, and
        # their counts (0: no value); a count was a third float32 (a quarter of the season)
        self.periods: dict[int, array[float]] = {}
        self.counts: dict[int, bytearray] = {}
        self.buf: list[float] = []  # values of the bin being observed
        self.buf_key: tuple[int, int] | None = None  # (period index, bin) of the buffer
        # completions per bin, 4 bytes each: a list was 8 bytes a bin (288 + 336 of them
        # for every latency series, ~20 MB at 1,000 targets before any has learnt anything);
        # made with the first summary (a fresh series has none: 2.5 KB less a series)
        self.version = array("I")
        # per bin (index, period, version): its medians, MADs and distances (see expect), one
        # float array of the three runs: tuples of float objects were 32 bytes a number,
        # ~30 KB a week-old series, as much as the season itself
        self.stats: dict[tuple[int, int, int, bool], array[float]] = {}
        # changes an expectation can see: bins older than half a period when completed (a
        # late value, a reload) and passes forgotten. It reads only the near bins of earlier
        # passes, so the remembered answers hold until one of these or the period turns
        self.old_closes = 0
        # the last answers by (bin, period, row interval): (bins completed then, answer). Two
        # are asked in turn: the newest row's phase (to judge) and the quarantined row's (to
        # learn), ten minutes apart, so one remembered answer missed every other call
        self.last: dict[tuple[int, int, float], tuple[int, tuple[float, float] | None]] = {}
        self.t0: float | None = None
        self.tmax = -math.inf

    def index(self, t: float) -> int:
        return int((t % self.period) / self.width) % self.nbins

    def add(self, t: float, y: float) -> None:
        key = (int(t // self.period), self.index(t))
        if key != self.buf_key:
            self._close()
            self.buf_key = key
        self.buf.append(y)
        self.tmax = max(self.tmax, t)
        if self.t0 is None:
            self.t0 = t

    def _close(self) -> None:
        """Summarise the buffered bin (a late value for a bin already summarised is folded
        in only when that bin had none)."""
        if self.buf_key is None or not self.buf:
            return
        pi, b = self.buf_key
        vals = sorted(self.buf)
        self.buf = []
        row = self.periods.get(pi)
        if row is None:
            if self.periods and pi < min(self.periods):
                return  # older than anything kept
            row = self.periods[pi] = array("f", [math.nan]) * (2 * self.nbins)
            self.counts[pi] = bytearray(self.nbins)
            for old in sorted(self.periods)[: max(0, len(self.periods) - self.keep - 1)]:
                del self.periods[old]
                del self.counts[old]
                # a pass forgotten: every remembered answer may have read it
                self.old_closes += 1
                self.stats.clear()
        if not math.isnan(row[2 * b]) and len(vals) < 2:
            return
        med = _median_sorted(vals)
        row[2 * b] = med
        row[2 * b + 1] = _mad_sorted(vals, med)
        self.counts[pi][b] = min(len(vals), 255)
        self._versions()[b] += 1
        if pi * self.period + (b + 1) * self.width <= self.tmax - self.period / 2:
            self.old_closes += 1

    def _versions(self) -> array[int]:
        if not self.version:
            self.version = array("I", bytes(4 * self.nbins))
        return self.version

    def expect(self, t: float, dt: float = 0.0) -> tuple[float, float] | None:
        """(median, MAD) at t's phase from earlier passes, None while there are too few."""
        if not self.periods:  # nothing summarised yet: no answer, nothing to remember
            return None
        n = self.nbins
        b = self.index(t)
        pi_now = int(t // self.period)
        # the same bin, period and row interval as a recent call, no old bin completed since:
        # the same answer (rows ask several times each: to judge, to learn, to choose). Not
        # when the rows are so wide that the window spans the period (then it reads bins of
        # this pass that age past half a period as t moves)
        k = max(1, math.ceil(dt / self.width - 1e-9))
        w = max(k, _SPREAD_BINS)
        lkey = (b, pi_now, dt)
        last = self.last.get(lkey) if 2 * w + 1 < n else None
        if last is not None and last[0] == self.old_closes:
            return last[1]
        if len(self.last) >= 4:
            del self.last[next(iter(self.last))]
        v = self._versions()
        cut = t - self.period / 2
        meds: list[float] = []  # the near bins' medians (the expectation)
        mads: list[float] = []  # within-bin spreads, over the wide bins
        devs: list[float] = []  # a bin median's distance from its bin's own typical level
        wide = range(b - w, b + w + 1) if 2 * w + 1 < n else range(n)
        for i in wide:
            # a bin's own lists change only when it is completed or the period turns
            # (and, for wide rows, whether this period's own bin is old enough yet)
            bkey = (i, pi_now, v[i % n], pi_now * self.period + (i + 1) * self.width <= cut)
            got = self.stats.get(bkey)
            if got is None:
                got = self._bin_stats(i, pi_now, cut)
                if len(self.stats) >= 2 * w + 8:  # the wide windows of the judged and the learnt row
                    del self.stats[next(iter(self.stats))]
                self.stats[bkey] = got
            c = len(got) // 3
            if c:
                if 2 * k + 1 >= n or (i - b + k) % n <= 2 * k:  # a near bin
                    meds.extend(got[:c])
                mads.extend(got[c:2 * c])
                devs.extend(got[2 * c:])
        out = None
        if len(meds) >= 3:
            meds.sort()
            mads.sort()
            devs.sort()
            # the spread: typical within-bin MAD and day-to-day MAD of a bin's median around
            # its own level, both over a wider phase than the expectation (half an hour
            # either side at 5-minute bins): a per-bin spread from a few bins' medians
            # jumped by a quarter from bin to bin, and after a relearnt shift (residuals
            # several spreads off) that jump alone paged
            out = (_median_sorted(meds), math.hypot(_median_sorted(mads), _median_sorted(devs)))
        self.last[lkey] = (self.old_closes, out)
        return out

    def bin_level(self, t: float, side: int) -> float | None:
        """The median of t's own bin's medians in earlier passes (older than half a period),
        None with fewer than two, and with two the one nearer the good side (a level both
        reached: one day's incident is not what the series does): what the series did at
        this time of day at the profile's finest resolution (`expect` takes the neighbouring
        bins too, and a 5-minute nightly spike is narrower than that window)."""
        got = self._bin_stats(self.index(t), int(t // self.period), t - self.period / 2)
        ms = list(got[: len(got) // 3])  # the medians (then their MADs and distances)
        if len(ms) < 2:
            return None
        if len(ms) == 2:
            return min(ms) if side > 0 else max(ms)
        ms.sort()
        return _median_sorted(ms)

    def _bin_stats(self, i: int, pi_now: float, cut: float) -> array[float]:
        """Bin i (may lie across the period's edge) in the periods before cut: its medians,
        its within-bin MADs (bias-corrected) and its medians' distances from their median."""
        n = self.nbins
        j = 2 * (i % n)
        ms: list[float] = []
        mads: list[float] = []
        for pi in range(int(pi_now) - self.keep, int(pi_now) + 1):
            # a neighbour across the period's edge is a bin of the previous or next one
            if pi * self.period + (i + 1) * self.width > cut:  # the end of the bin's time
                continue
            row = self.periods.get(pi + i // n)
            if row is None:
                continue
            m = row[j]
            if m == m:  # not nan
                ms.append(m)
                # a bin's MAD from a few values is biased low (by half for three)
                mads.append(row[j + 1] * _MAD_BIAS[min(self.counts[pi + i // n][i % n], len(_MAD_BIAS) - 1)])
        if not ms:
            return _NO_STATS
        centre = _median_sorted(sorted(ms))
        ms.extend(mads)
        ms.extend([abs(m - centre) for m in ms[: len(mads)]])
        return array("d", ms)

    def to_state(self) -> dict[str, Any]:
        return {"v": 2, "t0": self.t0, "tmax": self.tmax if self.t0 is not None else None,
                # [median, MAD, count] x bins, null where the bin has no value (the form
                # state had when the count was a third float in the row)
                "periods": {str(pi): [x for b in range(self.nbins) for x in (
                                (None, None, None) if row[2 * b] != row[2 * b]
                                else (float(row[2 * b]), float(row[2 * b + 1]), float(self.counts[pi][b])))]
                            for pi, row in self.periods.items()},
                "buf": list(self.buf), "buf_key": list(self.buf_key) if self.buf_key else None}

    def load(self, st: dict[str, Any] | None) -> None:
        if not st:
            return
        if st.get("v") != 2:  # the old form: every value, (t, y)
            for t, y in _unpack(st):
                self.add(t, y)
            self._close()
            self.buf_key = None
            return
        self.t0 = None if st.get("t0") is None else float(st["t0"])
        self.tmax = -math.inf if st.get("tmax") is None else float(st["tmax"])
        for pi, row in (st.get("periods") or {}).items():
            if len(row) == 3 * self.nbins:
                self.periods[int(pi)] = array("f", [math.nan if x is None else float(x)
                                                    for b in range(self.nbins) for x in row[3 * b: 3 * b + 2]])
                self.counts[int(pi)] = bytearray(0 if x is None else min(int(x), 255) for x in row[2::3])
        key = st.get("buf_key")
        if isinstance(key, list) and len(key) == 2:
            self.buf_key = (int(key[0]), int(key[1]))
            self.buf = [float(y) for y in st.get("buf", [])]
        self.version = array("I", [x + 1 for x in self._versions()])
        self.old_closes += 1


class _Seasons:
    """The daily profile, and the weekly one where it explains the series better.

    Both learn every value; each row first scores how far it is from each profile's
    expectation (decayed over a period, on the same rows), and the weekly profile is used
    once it has a period of history and its error is below `gain` x the daily one's (a
    series whose weekends differ: the daily profile calls every Saturday an incident)."""

    __slots__ = ("day", "err", "gain", "period", "week")

    def __init__(self, p: Params) -> None:
        self.day = _Season(p.season, p.season_bins, p.season_periods)
        self.week = _Season(p.season_week, p.season_week_bins, p.season_week_periods) if p.season_week > 0 else None
        self.period = p.season
        self.gain = p.season_gain
        self.err = [0.0, 0.0]  # decayed absolute errors of the daily and the weekly profile

    @property
    def t0(self) -> float | None:
        return self.day.t0

    def _weekly(self, t: float) -> bool:
        w = self.week
        return (w is not None and w.t0 is not None and t - w.t0 >= w.period
                and self.err[1] < self.gain * self.err[0])

    def expect(self, t: float, dt: float = 0.0) -> tuple[float, float] | None:
        if self.week is not None and self._weekly(t):
            es = self.week.expect(t, dt)
            if es is not None:
                return es
        return self.day.expect(t, dt)

    def add(self, t: float, y: float, dt: float) -> None:
        w = self.week
        if w is not None:
            ed, ew = self.day.expect(t, dt), w.expect(t, dt)
            if ed is not None and ew is not None:
                keep = math.exp(-dt / w.period)
                self.err[0] = keep * self.err[0] + abs(y - ed[0])
                self.err[1] = keep * self.err[1] + abs(y - ew[0])
            w.add(t, y)
        self.day.add(t, y)

    def to_state(self) -> dict[str, Any]:
        return {"v": 2, "day": self.day.to_state(), "week": self.week.to_state() if self.week else None,
                "err": list(self.err)}

    def load(self, st: dict[str, Any] | None) -> None:
        if not st:
            return
        if st.get("v") != 2:  # a daily season in the old form
            self.day.load(st)
            return
        self.day.load(st.get("day"))
        if self.week is not None:
            self.week.load(st.get("week"))
        err = st.get("err")
        if isinstance(err, list) and len(err) == 2:
            self.err = [float(err[0]), float(err[1])]


class LatencySeries:
    """Two time scales against a frozen-while-anomalous baseline.

    fast: rank-CUSUM of every probe against the most recent `short_baseline` healthy
          probes, effect = median of the last `recent` probes vs their median (steps);
    slow: sum of rank scores of the last `slow_window` probes against the whole baseline
          (`baseline_size`), effect = their median vs its median (creeps, which a short
          baseline would follow).
    The series' p-value is the stronger component's, times 2 (Bonferroni).

    Seasonal mode (`season` > 0): both components judge the residual y - (value expected at
    this time of day from earlier days) against the last `short_baseline` healthy
    residuals instead of y against the baseline. A series switches to it (and back) on
    healthy data alone, when the residuals' mean absolute deviation is below `season_gain`
    times that of the plain short baseline: a daily cycle then stops looking like steps.
    """

    __slots__ = (
        "_admits",
        "_held",
        "_k",
        "_last_e",
        "_last_s",
        "_last_s_set",
        "_last_z",
        "_n_base",
        "_n_held",
        "_n_local",
        "_n_min",
        "_n_quar",
        "_n_recent",
        "_n_record",
        "_n_short",
        "_n_slow",
        "_n_window",
        "_peak",
        "_rec_margin",
        "_scale",
        "_season_ready",
        "_sign",
        "_single",
        "anomalous",
        "base",
        "calm_since",
        "cusum",
        "cusum_lo",
        "direction",
        "dt",
        "fit",
        "last_t",
        "log_scale",
        "long",
        "p",
        "pending",
        "recent",
        "recent_r",
        "record",
        "record_q",
        "record_ratio",
        "res",
        "res_base",
        "season",
        "seasonal",
        "short",
        "since",
        "slow",
        "surprise",
    )

    def __init__(self, p: Params, *, log_scale: bool = True, direction: int = 1, single_probes: bool = False) -> None:
        self.p = p
        self.log_scale = log_scale
        # every row one probe, whatever the interval (the daemon's, and `detect --probes`),
        # or (False: `detect`'s files) a row that spans k probe intervals an aggregate of k
        # probes: the aggregate rules (_cap, the row test, the record test, an unclipped
        # surprise) are for means, whose noise shrinks as they average; a single probe's heavy
        # tail does not, whether it comes every minute or every half hour
        self._single = single_probes
        # +1: higher is worse, -1: lower is worse, 0: both (two-sided; the NAB harness, where
        # an anomaly is any departure of the one series, so neither side learns it)
        self.direction = direction
        self._sign = direction or 1  # orientation of the scale `y`
        self.base = _Pairs()  # (t, y) in arrival order
        self.long = _Ranked()  # every baseline value
        self.short = _Ranked()  # the newest short_baseline of them
        self.pending = _Pairs()
        self.dt = _Interval()
        self._n_recent = self._n_slow = self._n_quar = self._n_short = self._n_base = self._n_min = 0
        self._n_local = 0
        self._n_record = 0  # the record test's window (0: off) and margin
        self._rec_margin = 0.0
        self._n_window = self._n_held = 1  # rows `recent` (and recent_r) and `_held` keep
        self.recent = array("d")  # the newest _n_window values
        self.slow = array("d")  # rank scores against `long`, the newest _n_slow
        self.cusum = 0.0
        self.cusum_lo = 0.0  # the downward CUSUM (two-sided only)
        self.anomalous = False
        self.since: float | None = None
        self.calm_since: float | None = None
        self.last_t = 0.0
        self._k = 0.5
        self._scale = 1.0
        self._admits = 0
        # seasonal model (None when off), its healthy residuals and the recent ones
        self.season = _Seasons(p) if p.season > 0 else None
        self.res = _Ranked()  # standardised residuals (t's phase: minus median, over spread)
        self.res_base = _Pairs()
        # to choose the mode: healthy rows' absolute error from the season's expectation
        # and from the short baseline's median, each decayed over a period (the same rows)
        self.fit = [0.0, 0.0]
        self.recent_r = array("d")  # the newest _n_window residuals
        self.seasonal = False
        self._season_ready = False
        # the record test's window of every value (record_margin > 0) and its last verdict
        self.record = _Ranked()
        self.record_q = array("d")  # the newest record_window values, in arrival order
        self.record_ratio = 0.0
        self._last_e = math.nan
        self._last_s = 1.0
        self._last_s_set = False
        self._last_z = 0.0  # the newest row's clipped z (the row test)
        self._peak = 0.0  # the current anomaly's largest departure from the short baseline
        # values seen during the current anomaly (for relearning)
        self._held = _Pairs()  # the newest _n_held
        self.surprise = _Surprise()
        self._counts()

    def _counts(self) -> None:
        """Rows of every window at the current row interval; the windows' arrays follow."""
        p, dt = self.p, self.dt.value
        assert isinstance(p.recent, Span) and isinstance(p.slow_window, Span) and isinstance(p.quarantine, Span)
        assert isinstance(p.short_baseline, Span) and isinstance(p.baseline_size, Span)
        assert isinstance(p.baseline_min, Span)
        self._n_recent = p.recent.count(dt, _RECENT_PROBES if self._single else 1)
        self._n_slow = p.slow_window.count(dt, _MIN_SLOW)
        self._n_quar = p.quarantine.count(dt, 0)
        self._n_short = p.short_baseline.count(dt, _MIN_SHORT)
        self._n_base = max(p.baseline_size.count(dt, _MIN_SHORT), self._n_short)
        self._n_min = min(p.baseline_min.count(dt, _MIN_READY), self._n_short)
        # the rows just before the `recent` window (see _rise), kept only until the season is
        # ready (the state of a week-old series is what it was without them)
        warming = self.season is not None and not self._season_ready
        self._n_local = _RISE_SPAN.count(dt, _RISE_MIN_ROWS) if warming else 0
        self._n_window = max(self._n_recent + self._n_local, self._n_slow)
        _trim(self.recent, self._n_window)
        _trim(self.recent_r, self._n_window)
        _trim(self.slow, self._n_slow)
        self.surprise.resize(self._n_recent)
        if p.record_margin > 0:  # the option, on every row
            self._rec_margin, self._n_record = p.record_margin, p.record_window
        elif self._aggregate_rows():
            self._rec_margin, self._n_record = _AGG_RECORD_MARGIN, _AGG_RECORD_SPAN.count(dt, _MIN_SHORT)
        else:
            self._rec_margin, self._n_record = 0.0, 0
        self._trim_record()
        if not self._n_record:
            self.record_ratio = 0.0
        self._n_held = max(self._n_short, p.relearn_after)
        while len(self._held.t) > self._n_held:
            self._held.popleft()

    # -- values -------------------------------------------------------------------
    def orient(self, x: float) -> float | None:
        if self.log_scale:
            if not (x > 0) or not math.isfinite(x):
                return None
            return self._sign * math.log(x)
        if not math.isfinite(x):
            return None
        return self._sign * x

    def _unorient(self, y: float) -> float:
        v = self._sign * y
        return math.exp(v) if self.log_scale else v

    def _floor(self) -> float:
        floor = self.p.sigma_floor
        if not self.log_scale and self.long.values:  # raw scale: a floor relative to the range
            floor = max(floor * (self.long.values[-1] - self.long.values[0]), 1e-12)
        return floor

    def _refresh(self, full: bool = True, choose: bool = True) -> None:
        floor = self._floor()
        # spreads move slowly (and the baseline is frozen during an anomaly): refreshed with
        # every tenth value once the short baseline is full
        self.short.refresh(floor, spread=full)
        self.long.refresh(floor, spread=full)
        if self.season is not None:
            # the residuals' spread, like the long baseline's, moves slowly
            self.res.refresh(_RES_FLOOR, spread=full or len(self.res.values) < self._n_short)
            if full and self.fit[0] > 0 and self._last_s > 0:
                # at least the spread the residuals show over the last period or so (their
                # mean absolute deviation, x 1.2533 for a normal's sigma): two hours of
                # residuals are a noisy estimate, and a calm stretch must not make an
                # ordinary hour of the daily swing look like a step
                keep = math.exp(-self.dt.value / self.p.season)
                usual = 1.2533 * self.fit[0] * (1.0 - keep) / self._last_s
                self.res.sigma = max(self.res.sigma, usual)
            if full and choose:
                self._choose_mode()
        sigma = self.res.sigma * self._last_s if self.seasonal and self.log_scale else (
            self.res.sigma if self.seasonal else self.short.sigma)
        d = self.p.design_effect
        shift = math.log1p(d) if self.log_scale else d * sigma
        # beyond half of z_cap, k would only slow the CUSUM down (2k(z_max - k) nats per
        # probe is largest at k = z_max / 2)
        self._k = min(max(shift / (2 * sigma), 0.1), self._cap() / 2)
        self._scale = math.log1p(self.p.min_effect) if self.log_scale else self.p.raw_min_effect
        if self.p.min_effect_sigmas > 0 and self.log_scale:
            # a calm series pages on a change that is large for it: its practical size is at
            # most this many of its own sigmas (a noisy one's stays min_effect)
            self._scale = min(self._scale, self.p.min_effect_sigmas * sigma)

    def _aggregate_rows(self) -> bool:
        """Rows that are means of _ROW_TEST_PROBES probes' time or more (half-hourly, hourly
        aggregates), which a row test and a record test judge on their own."""
        return not self._single and self.dt.value >= _ROW_TEST_PROBES * PROBE_INTERVAL

    def _cap(self) -> float:
        """The most one row may weigh: z_cap for a probe (one slow probe is not an incident,
        however rarely the daemon probes). An aggregate row that is the whole `recent` window
        on its own (rows of 5 minutes or more at the default) stands for dt / PROBE_INTERVAL
        probes' worth of time, whose mean's spread shrinks as its square root: an hourly row
        far off is an hour of trouble."""
        if self._n_recent > 1:  # always for single probes (_RECENT_PROBES)
            return self.p.z_cap
        return self.p.z_cap * math.sqrt(max(1.0, self.dt.value / PROBE_INTERVAL))

    def _choose_mode(self) -> None:
        s = self.season
        want = (
            s is not None and s.t0 is not None and len(self.res.values) >= self._n_min
            and self.last_t - s.t0 >= self.p.season_min_periods * self.p.season
            and self.fit[0] < self.p.season_gain * self.fit[1]
        )
        if want != self.seasonal:
            self.seasonal = want
            self.cusum = self.cusum_lo = 0.0
            del self.slow[:]

    def ready(self) -> bool:
        return len(self.base.t) >= self._n_min

    # -- feeding --------------------------------------------------------------------
    def observe(self, t: float, x: float) -> None:
        y = self.orient(x)
        if y is None:
            return
        if self.dt.see(t):
            self._counts()
        self.last_t = max(self.last_t, t)
        r = None
        if self.season is not None:
            es = self.season.expect(t, self.dt.value)
            if es is not None:
                self._last_e = es[0]
                self._last_s = self._smooth_spread(es[1])
                r = (y - es[0]) / self._last_s
                if len(self.base.t) >= self._n_min and (not self.anomalous
                                     or abs(r - self.res.med) <= self.p.z_cap * self.res.sigma):
                    # which reference explains the series better over the last period or so,
                    # on the same rows: the healthy ones, and during an anomaly those the
                    # season explains (the edges of a square wave page on a flat baseline, so
                    # in its terms they are never healthy, and the proof that the season
                    # explains them would never be seen; a missing peak, which the season
                    # does not explain, says nothing about which model is right)
                    keep = math.exp(-self.dt.value / self.p.season)
                    fit = self.fit
                    # around the residuals' own level, as the flat one is around its median:
                    # after a lasting shift is relearnt the season lags by days at every
                    # phase, but by the same amount, and still explains the shape
                    fit[0] = keep * fit[0] + abs(y - es[0] - self.res.med * self._last_s)
                    fit[1] = keep * fit[1] + abs(y - self.short.med)
        if len(self.base.t) >= self._n_min:  # ready(), without a call (it is every row's)
            cap = self._cap()
            if self.seasonal and r is not None:
                z = (r - self.res.med) / self.res.sigma
                self.slow.append(self.res.score(r, cap, self.p.extrapolate))
            else:
                z = (y - self.short.med) / self.short.sigma
                self.slow.append(self.long.score(y, cap, self.p.extrapolate))
            if len(self.slow) > self._n_slow:
                del self.slow[0]
            if self.p.likelihood > 0:
                # a probe's surprise is clipped like its CUSUM step (one probe is not an
                # incident, and a heavy tail's probes sit at the clip); a row that is the
                # whole `recent` window on its own (5-minute or hourly aggregates) is not:
                # on a series whose rows often sit at the clip (quantised, 2x apart), a row
                # 17x off must still be rarer than those
                zs = z if self._n_recent == 1 else min(max(z, -cap), cap)
                self.surprise.see(t, abs(zs) if not self.direction else zs)
            z = min(max(z, -cap), cap)
            self._last_z = z
            # bounded, so that the statistic recovers within a few dozen probes
            self.cusum = min(max(0.0, self.cusum + z - self._k), 60.0 / self._k)
            if not self.direction:
                self.cusum_lo = min(max(0.0, self.cusum_lo - z - self._k), 60.0 / self._k)
        self.recent.append(y)
        if len(self.recent) > self._n_window:
            del self.recent[0]
        if self.season is not None:
            # every value, healthy or not, without waiting for the quarantine: an expectation
            # reads only values older than half a period, and a median over the days at a
            # phase resists one day's incident, while what recurs at the same time every
            # day (a nightly batch, a load step) is the season's to learn, not an incident
            # that pages daily because it never joined the history
            self.season.add(t, y, self.dt.value)
        if self._n_record:
            self._record(y)
        if self.season is not None:
            # no expectation (a gap in the seasonal history): the deviation from the short
            # baseline stands in, on the residuals' scale
            self.recent_r.append(r if r is not None else (y - self.short.med) / self.short.sigma + self.res.med)
            if len(self.recent_r) > self._n_window:
                del self.recent_r[0]
        pt, py = self.pending.t, self.pending.y
        pt.append(t)
        py.append(y)
        if self.anomalous:
            self._held.append(t, y)
            self._peak = max(self._peak, self._departure(y))
            if len(self._held.t) > self._n_held:
                self._held.popleft()
            if self._relearn_due():
                self._relearn()
        while len(pt) > (self._n_quar if len(self.base.t) >= self._n_min else 0):
            ts, ys = pt[0], py[0]
            del pt[0], py[0]
            # the season's warm-up ends on its own clock; an anomaly's values never join
            warming = self._warming()
            self.surprise.settle(ts, not self.anomalous, math.exp(-self.dt.value / self.p.likelihood_memory)
                                 if self.p.likelihood > 0 else 1.0)
            if not self.anomalous:
                self._admit(ts, ys)
            elif warming:
                # before the season has seen a period it cannot tell a daily cycle from an
                # anomaly: its residuals (not the baseline) learn from everything meanwhile
                self._learn_residual(ts, ys)

    def _record(self, y: float) -> None:
        """Judge y against the range of the last _n_record values (anomalous or not), then
        remember it. With the `record_margin` option, on every row; without it, on rows that
        are aggregates of _ROW_TEST_PROBES probes or more, where it must also be the practical
        size above the short baseline (on a calm series, a new record by a sliver is not an
        incident)."""
        vals = self.record.values
        self.record_ratio = 0.0
        if len(vals) >= self._n_min:
            med = _median_sorted(vals)
            margin = self._rec_margin
            aggregate = not self.p.record_margin  # the aggregate rows' test, not the option
            if aggregate:
                # a chance record as rare as the likelihood level: with n values in the
                # window and tails no heavier than exponential (on the oriented scale), one
                # beyond the range by m x its reach comes about n^-(1 + m) per row, so a
                # young series (a few days of rows, a narrow range) needs a wider margin
                level = min(0.5, self.dt.value / (self.p.likelihood or _RECORD_LEVEL_SPAN))
                margin = max(margin, math.log(1.0 / level) / math.log(len(vals)) - 1.0)
            sides = (1,) if self.direction else (1, -1)
            for side in sides:
                span = side * ((vals[-1] if side > 0 else vals[0]) - med)
                if span > 0:  # 1 at the edge plus the margin: the threshold scales the margin
                    edge = med + side * span
                    r = side * (y - edge) / (margin * span)
                    if aggregate:
                        # a record lies beyond every baseline value, so on the record's side
                        r = min(r, self._departure(y) / self._scale) if self.short.values else 0.0
                    self.record_ratio = max(self.record_ratio, r)
        self.record.add(y)
        self.record_q.append(y)
        self._trim_record()

    def _trim_record(self) -> None:
        while len(self.record_q) > self._n_record:
            self.record.remove(self.record_q[0])
            del self.record_q[0]

    def _warming(self) -> bool:
        """The seasonal model's warm-up (until it has season_min_periods of history and
        baseline_min healthy residuals): it cannot tell a daily cycle from an anomaly yet,
        so the baseline learns from everything meanwhile."""
        s = self.season
        if s is None or self._season_ready:
            return False
        self._season_ready = s.t0 is not None and len(self.res.values) >= self._n_min \
            and self.last_t - s.t0 >= self.p.season_min_periods * s.period
        if self._season_ready:
            self._counts()  # the rise check's rows are no longer needed
            self._refresh(full=True)  # the first choice between the modes
        return not self._season_ready

    def _relearn_due(self) -> bool:
        p = self.p
        if p.relearn_after and len(self._held.t) >= p.relearn_after:
            return True
        return bool(p.relearn_time) and self.since is not None and len(self._held.t) >= self._n_min \
            and self.last_t - self.since >= p.relearn_time

    def _relearn(self) -> None:
        """A lasting change is the new normal: rebuild the baseline from the anomaly's values.

        The anomaly ends (the alert resolves). The seasonal history is kept and learns the
        held values too: where the old level no longer explains the data, its residuals are
        no better than the plain baseline and the plain mode is used until it has relearnt.

        An anomaly that is already calming down (its effect small, though not yet for
        exit_hold) is over rather than a new normal: it just ends, and the baseline (and the
        mode it chose on healthy data) stays. Rebuilding from held values that are mostly
        the incident would teach the baseline the incident, and the return to the old
        level would page again."""
        if self.calm_since is not None:
            self.leave()
            return
        held = self._held.rows()
        self.base.clear()
        self.long = _Ranked()
        self.short = _Ranked()
        self.res = _Ranked()
        self.res_base.clear()
        self.leave()
        for t, y in held:
            self._admit(t, y)

    def _admit(self, t: float, y: float) -> None:
        bt, by = self.base.t, self.base.y
        bt.append(t)
        by.append(y)
        self.long.add(y)
        short = self.short
        short.add(y)
        # the short baseline is the newest _n_short of `base` (it follows the row interval)
        while len(short.values) > self._n_short:
            short.remove(by[-len(short.values)])
        while len(short.values) < min(self._n_short, len(bt)):
            short.add(by[-len(short.values) - 1])
        while len(bt) > self._n_base or (len(bt) > self._n_min and t - bt[0] > self.p.baseline_max_age):
            old = by[0]
            del bt[0], by[0]
            self.long.remove(old)
            if len(short.values) > len(bt):  # aged out of the short baseline too
                short.remove(old)
        self._learn_residual(t, y)
        self._admits += 1
        self._refresh(full=self._admits % 10 == 0 or len(bt) < self._n_short)

    def _learn_residual(self, t: float, y: float) -> None:
        if self.season is not None:
            es = self.season.expect(t, self.dt.value)
            if es is not None:
                self._admit_residual(t, (y - es[0]) / self._last_s)

    def _smooth_spread(self, mad: float) -> float:
        """The season's spread, smoothed over the short baseline's span: a bin's own
        spread, from a few days' bins, jumps by a third from bin to bin, and residuals
        several spreads off (after a relearnt shift) would page on the jump alone."""
        s = max(_MAD_TO_SIGMA * mad, self._floor())
        if not self._last_s_set:
            self._last_s_set = True
            return s
        assert isinstance(self.p.short_baseline, Span)
        span = self.p.short_baseline.seconds or self._n_short * self.dt.value
        a = 1.0 - math.exp(-self.dt.value / max(span, self.dt.value))
        return self._last_s + a * (s - self._last_s)

    def _admit_residual(self, t: float, r: float) -> None:
        rt, ry = self.res_base.t, self.res_base.y
        rt.append(t)
        ry.append(r)
        self.res.add(r)
        while len(rt) > self._n_short:
            old = ry[0]
            del rt[0], ry[0]
            self.res.remove(old)

    # -- judging ---------------------------------------------------------------------
    def _effect(self, n: int, ref: _Ranked, resid: bool = False) -> tuple[float, float]:
        """(oriented median shift of the last n probes over ref's median, that median)."""
        r = sorted((self.recent_r if resid else self.recent)[-n:])
        med_r = _median_sorted(r)
        diff = med_r - ref.med
        if not self.log_scale:
            diff /= ref.sigma
        elif resid:  # standardised residuals back to the log scale
            diff *= self._last_s
        return diff, med_r

    def _novelty(self, ref: _Ranked, med_r: float, side: int) -> float:
        """How far the recent median is beyond the baseline's novelty quantile, as a ratio:
        1 at the quantile (on the side tested), 0 at the median. A level the baseline has
        often held (a recurring burst, a busy hour) is not new, however many sigmas it is."""
        vals = ref.values
        m = len(vals)
        if m == 0:
            return math.inf
        q = self.p.novelty
        edge = vals[min(m - 1, int(q * m))] if side > 0 else vals[max(0, int((1 - q) * m))]
        med = _median_sorted(vals) if ref is self.record else ref.med
        span = side * (edge - med)
        shift = side * (med_r - med)
        if span <= 0:
            return math.inf if shift > 0 else 0.0
        return shift / span

    def _rise(self, med_r: float, side: int) -> float:
        """The recent median's shift over the rows just before the `recent` window (a ratio to
        the practical size). Before the season has seen a period the fast test compares rows
        with the short baseline, which lags a daily cycle's rise by half its span: on a 3x
        swing's steepest hours that lag alone reaches the practical size. A step is as far
        from the rows just before it as from the baseline; a rise of a daily cycle's pace is
        not (nor is a creep of that pace: on a series younger than a period the two are the
        same shape, and a creep is the slow test's once the season is ready)."""
        n, m = self._n_recent, self._n_local
        if len(self.recent) < n + m:
            return math.inf
        before = sorted(self.recent[-n - m:-n])
        d = side * (med_r - _median_sorted(before))
        if self._last_e == self._last_e:
            # where the daily profile already has this hour of an earlier day (it is not yet
            # ready to judge by: too few residuals for their spread), a rise that yesterday
            # also made at this hour is not a step either: at one probe every 30 minutes the
            # rows just before span hours of the rise, and the profile waits 10 hours for
            # its 20 residuals
            d = min(d, side * (med_r - self._last_e))
        if not self.log_scale:
            d /= self.short.sigma
        return d / self._scale

    def _seen(self, med_r: float, side: int, rows: int) -> float:
        """The recent median's departure from what the daily profile saw at this time on
        earlier days (a ratio to the practical size; inf until it has two of them): a
        nightly job's spike, in a series the flat baseline judges (the profile explains the
        rest of the day no better), is the series' own once it has come twice. The
        profile's single bins under the recent window (over the `rows` the median is of) at
        their own resolution (a 5-minute spike is narrower than the smoothed expectation's
        window), the closest of them; with two earlier days both must have shown the level,
        so one day's incident is never the series' own (a failure that recurs once pages
        both times). Where what was seen is itself off the baseline by the practical size (a
        spike), seen means alike, as a habit's blips are: within 1.5x (a spike's level moves
        that much from night to night with its timing against the bins); elsewhere the
        practical size stands, so a step at an ordinary hour pages as it would without the
        profile."""
        s = self.season
        if s is None or s.t0 is None or self.last_t - s.t0 < 2 * s.period:
            return math.inf
        levels: list[float] = []
        day = s.day
        t = self.last_t
        while t > self.last_t - rows * self.dt.value - 1e-9:
            level = day.bin_level(t, side)
            if level is not None:
                levels.append(level)
            t -= day.width
        unit = self.short.sigma if not self.log_scale else 1.0
        out = math.inf
        for level in levels:
            scale = self._scale
            if self.log_scale and side * (level - self.short.med) >= self._scale:
                scale = max(scale, _HABIT_ALIKE)
            out = min(out, side * (med_r - level) / unit / scale)
        return out

    def status(self, fdr_q: float = 1e-4) -> Status:
        n_recent = len(self.recent)
        if not self.ready() or n_recent < self._n_recent:
            med = self._unorient(self.long.med) if self.base else math.nan
            return Status(1.0, 0.0, 0.0, True, med, math.nan, len(self.base.t), n_recent, False)
        seasonal = self.seasonal
        short, long = (self.res, self.res) if seasonal else (self.short, self.long)
        # two-sided: each component judges the side its statistic points to, and the
        # p-values pay for the choice (twice as many tests)
        tests = 2 if self.direction else 4
        # fast: CUSUM tail under the null, with Siegmund's overshoot correction
        side_fast = -1 if self.cusum_lo > self.cusum else 1
        p_fast = math.exp(-2.0 * self._k * (max(self.cusum, self.cusum_lo) + _OVERSHOOT))
        if self._aggregate_rows():
            # one row that is an hour-long mean far off its baseline is an hour of trouble:
            # its own normal tail, which the CUSUM (built for sustained small shifts) would
            # need several such rows to reach
            z_row = self._last_z
            p_row = _ND.cdf(-abs(z_row) if not self.direction else -z_row)
            if p_row < p_fast:
                p_fast, side_fast = p_row, (1 if self.direction or z_row >= 0 else -1)
        d_fast, med_fast = self._effect(self._n_recent, short, seasonal)
        d_fast *= side_fast
        # slow: the mean rank score of the last slow_window probes
        p_slow, d_slow, med_slow, side_slow = 1.0, -math.inf, med_fast, 1
        # a creep against the long baseline cannot be told from a daily cycle before the
        # season has seen one: with the season on, the creep test waits for it
        creeps = self.season is None or self._season_ready
        if creeps and len(self.slow) >= self._n_slow:
            total = sum(self.slow)
            side_slow = -1 if not self.direction and total < 0 else 1
            p_slow = _ND.cdf(-side_slow * total / math.sqrt(len(self.slow)))
            d_slow, med_slow = self._effect(self._n_slow, long, seasonal)
            d_slow *= side_slow
        # time, not rows: the level is a false-alarm rate per probe interval, and a row that
        # spans k intervals is one look where the daemon takes k, so it may be judged at a
        # k-times looser level for the same false pages a day
        looks = min(1.0, PROBE_INTERVAL / self.dt.value)
        p_fast *= looks
        p_slow *= looks
        log_q = math.log(fdr_q)

        def strength(pv: float, d: float) -> float:
            return min(math.log(max(tests * pv, _P_FLOOR)) / log_q, d / self._scale)

        fast = strength(p_fast, d_fast) >= strength(p_slow, d_slow)
        pv, diff, med_r, ref, n_used, side = (
            (p_fast, d_fast, med_fast, short, self._n_recent, side_fast) if fast
            else (p_slow, d_slow, med_slow, long, self._n_slow, side_slow)
        )
        ratio = diff / self._scale
        if fast and ratio > 0 and not seasonal and self._n_local:
            ratio = min(ratio, self._rise(med_fast, side_fast))
        if self._single and ratio > 0 and not seasonal:
            ratio = min(ratio, self._seen(med_r, side, n_used))
        if self.p.likelihood > 0:
            if not self.surprise.ready():  # not yet enough history to judge the series against itself
                med = self._unorient(self.long.med)
                return Status(1.0, 0.0, 0.0, True, med, math.nan, len(self.base.t), n_recent, False)
            # the gate is for bursts (the fast test): the creep test's window is a
            # majority of half an hour of rows beyond the long baseline, never a burst,
            # and a creep's rows are each unsurprising against the short baseline
            if fast and ratio > 0:  # the gate (>= 0) can only lower a positive ratio
                sp = self.surprise.p
                assert sp is not None
                level = min(0.5, self.dt.value / self.p.likelihood)  # per row: a rate in time
                ratio = min(ratio, math.log(max(sp, _P_FLOOR)) / math.log(level))
        if self.p.novelty > 0:
            # against everything seen lately when the record test keeps that window (plain
            # mode: the same scale), else against the component's baseline
            seen = self.record if self.record.values and not seasonal else ref
            ratio = min(ratio, self._novelty(seen, med_r, side))
        exit_ok = max(d_fast, d_slow) / self._scale < self.p.exit_fraction
        if not self.direction:  # small on both sides, whichever the statistics point to
            exit_ok = abs(d_fast) / self._scale < self.p.exit_fraction and (
                d_slow == -math.inf or abs(d_slow) / self._scale < self.p.exit_fraction)
        sign = self.direction or side
        effect = math.expm1(sign * diff) if self.log_scale else sign * diff
        p_value = min(1.0, max(tests * pv, _P_FLOOR))
        if seasonal:  # report levels, not residuals: expected now vs expected + recent shift
            base_y = self._last_e + ref.med * self._last_s
            rec_y = self._last_e + med_r * self._last_s
        else:
            base_y, rec_y = ref.med, med_r
        return Status(p_value, effect, ratio, exit_ok, self._unorient(base_y), self._unorient(rec_y),
                      len(ref.values), n_used, True, self.record_ratio)

    def enter(self, now: float) -> None:
        self.anomalous = True
        self.since = now
        self.pending.clear()  # the onset must not reach the baseline
        self.surprise.hold()  # ...nor the series' history of surprise, unless a habit (release)
        self._peak = self._departure(self.recent[-1]) if self.recent else 0.0

    def _departure(self, y: float) -> float:
        """How far y lies from the short baseline on the adverse side (either side when
        two-sided): a log ratio, or robust sigmas on the raw scale."""
        d = y - self.short.med
        if not self.direction:
            d = abs(d)
        return d if self.log_scale else d / self.short.sigma

    def leave(self) -> None:
        if self.p.likelihood > 0:
            blip = self.since is not None and self.calm_since is not None \
                and self.calm_since - self.since <= max(self._n_recent, self._n_slow, _BLIP_MIN_ROWS) * self.dt.value
            # peaks within 1.5x of each other differ by at most log(1.5)
            peak = self._peak if self.log_scale else math.log(max(self._peak, 1e-9))
            self.surprise.release(blip, peak, self.last_t, self.p.likelihood_memory,
                                  math.exp(-self.dt.value / self.p.likelihood_memory))
        self._peak = 0.0
        self.anomalous = False
        self.since = None
        self.calm_since = None
        self.cusum = self.cusum_lo = 0.0
        del self.slow[:]
        self.pending.clear()
        self.surprise.pending.clear()
        self._held.clear()

    # -- persistence ------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        st: dict[str, Any] = {
            "base": _pack(self.base),
            "pending": _pack(self.pending),
            "recent": [round(y, 5) for y in self.recent],
            "slow": [round(z, 4) for z in self.slow],
            "cusum": self.cusum,
            "cusum_lo": self.cusum_lo,
            "anomalous": self.anomalous,
            "since": self.since,
            "calm_since": self.calm_since,
            "last_t": self.last_t,
            "held": _pack(self._held),
            "gaps": self.dt.to_state(),
            # the spreads as last refreshed (every tenth admission), and that cadence
            "sig": [self.short.sigma, self.long.sigma, self.res.sigma, self._admits],
            "single": self._single,
        }
        if self.p.likelihood > 0:
            st["surprise"] = self.surprise.to_state()
        if self._n_record:
            st["record"] = [round(y, 5) for y in self.record_q]
        if self.season is not None:
            st["season"] = self.season.to_state()
            st["res"] = _pack(self.res_base)
            st["fit"] = list(self.fit)
            st["last_s"] = self._last_s if self._last_s_set else None
            st["recent_r"] = [round(r, 5) for r in self.recent_r]
            st["seasonal"] = self.seasonal
            st["season_ready"] = self._season_ready
        return st

    def load_state(self, st: dict[str, Any]) -> None:
        # what the rows were when saved (a state from before the key: as created)
        self._single = bool(st.get("single", self._single))
        self.dt = _Interval()
        self.dt.load(st.get("gaps", []), float(st.get("last_t", 0.0)))
        self.surprise = _Surprise()
        # before the windows' lengths: a ready season keeps no rows for the rise check
        self._season_ready = bool(st.get("season_ready", False)) and self.season is not None
        self._counts()
        self.surprise.load(st.get("surprise"))
        self.base = _Pairs(_unpack(st.get("base")))
        self.long = _Ranked()
        self.short = _Ranked()
        for y in self.base.y:
            self.long.add(y)
        for y in self.base.y[-self._n_short:]:
            self.short.add(y)
        self.pending = _Pairs(_unpack(st.get("pending")))
        self.recent = array("d", (float(y) for y in st.get("recent", [])))
        _trim(self.recent, self._n_window)
        self.slow = array("d", (float(z) for z in st.get("slow", [])))
        _trim(self.slow, self._n_slow)
        self.cusum = float(st.get("cusum", 0.0))
        self.cusum_lo = float(st.get("cusum_lo", 0.0))
        self.anomalous = bool(st.get("anomalous", False))
        self.since = st.get("since")
        self.calm_since = st.get("calm_since")
        self.last_t = float(st.get("last_t", 0.0))
        self._held = _Pairs(_unpack(st.get("held"))[-self._n_held:])
        self.record = _Ranked()
        self.record_q = array("d")
        for y in st.get("record", [])[-self._n_record:] if self._n_record else []:
            self.record.add(float(y))
            self.record_q.append(float(y))
        self.res = _Ranked()
        self.res_base = _Pairs()
        self.fit = [0.0, 0.0]
        self.recent_r = array("d")
        self.seasonal = False
        if self.season is not None:
            self.season = _Seasons(self.p)
            self.season.load(st.get("season"))
            for t, r in _unpack(st.get("res")):
                self._admit_residual(t, r)
            fit = st.get("fit")
            if isinstance(fit, list) and len(fit) == 2:
                self.fit = [float(fit[0]), float(fit[1])]
            self.recent_r.extend(float(r) for r in st.get("recent_r", []))
            _trim(self.recent_r, self._n_window)
            if len(self.recent_r) < len(self.recent):  # state saved with the season off
                self.recent_r = array("d", [self.res.med] * len(self.recent))
            es = self.season.expect(self.last_t, self.dt.value)
            if es is not None:
                self._last_e = es[0]
                self._last_s = max(_MAD_TO_SIGMA * es[1], self._floor())
                self._last_s_set = True
            if st.get("last_s") is not None:  # the smoothed spread, as it was
                self._last_s = float(st["last_s"])
                self._last_s_set = True
        self.seasonal = bool(st.get("seasonal", False)) and self.season is not None
        self._refresh(choose=False)
        sig = st.get("sig")
        if isinstance(sig, list) and len(sig) == 4:  # as the saved series had them
            self.short.sigma, self.long.sigma, self.res.sigma = (float(x) for x in sig[:3])
            self._admits = int(sig[3])
            self._refresh(full=False, choose=False)  # k and the scale from them
        # the current anomaly's largest departure, from the values it has held (the state
        # does not carry it: the baseline it is measured against is frozen, so it is the same)
        self._peak = max((self._departure(y) for y in self._held.y), default=0.0) if self.anomalous else 0.0


def _pack(samples: _Pairs) -> dict[str, Any]:
    """Compact JSON: first time, whole-second deltas, values to 5 decimals."""
    if not samples:
        return {"t0": 0.0, "dt": [], "y": []}
    t0 = samples.t[0]
    return {"t0": t0, "dt": [round(t - t0) for t in samples.t], "y": [round(y, 5) for y in samples.y]}


def _unpack(packed: dict[str, Any] | None) -> list[tuple[float, float]]:
    if not packed:
        return []
    t0 = float(packed["t0"])
    return [(t0 + float(dt), float(y)) for dt, y in zip(packed["dt"], packed["y"], strict=True)]


def decide(series: LatencySeries | ErrorSeries, st: Status, q: float, fdr_q: float, now: float,
           threshold: float = 1.0) -> bool:
    """Apply one evaluation's verdict to a series' state; True when the state changed.

    Enter: significant after FDR (q <= fdr_q) and practically large (effect ratio >= 1).
    Leave: effect below exit_fraction of the minimum (hysteresis, one page per incident).
    `threshold` scales both (q <= fdr_q ** threshold, effect ratio >= threshold): it is a
    threshold on the score min(log q / log fdr_q, effect ratio), 1.0 in the daemon.
    """
    if series.anomalous:
        if not st.exit_ok:
            series.calm_since = None
            return False
        if series.calm_since is None:
            series.calm_since = series.last_t
        if series.last_t - series.calm_since >= series.p.exit_hold:
            series.leave()
            return True
        return False
    if st.ready and ((q <= fdr_q ** threshold and st.effect_ratio >= threshold)
                     or st.record_ratio >= threshold):
        series.enter(series.last_t or now)
        return True
    return False


class ErrorSeries:
    """Binomial tests of recent error counts against a frozen-while-anomalous baseline rate."""

    __slots__ = ("anomalous", "base", "base_errors", "calm_since", "dt", "last_t", "p", "pending", "recent",
                 "since")

    def __init__(self, p: Params) -> None:
        self.p = p
        # 0/1 a probe, a byte each (a deque held a pointer each, 8 bytes)
        self.base = bytearray()
        self.base_errors = 0
        self.pending = bytearray()
        self.recent = bytearray()  # the newest max(error_windows)
        self.anomalous = False
        self.since: float | None = None
        self.calm_since: float | None = None
        self.last_t = 0.0
        self.dt = _Interval()  # warm-up and quarantine are durations; the tests' windows are probes

    def ready(self) -> bool:
        assert isinstance(self.p.baseline_min, Span)
        return len(self.base) >= self.p.baseline_min.count(self.dt.value, _MIN_READY)

    def observe(self, t: float, err: bool) -> None:
        e = 1 if err else 0
        self.dt.see(t)
        self.last_t = max(self.last_t, t)
        self.recent.append(e)
        _trim(self.recent, max(self.p.error_windows))
        self.pending.append(e)
        assert isinstance(self.p.quarantine, Span)
        while len(self.pending) > (self.p.quarantine.count(self.dt.value, 0) if self.ready() else 0):
            v = self.pending[0]
            del self.pending[0]
            if not self.anomalous:
                self.base.append(v)
                self.base_errors += v
                if len(self.base) > self.p.error_baseline_size:
                    self.base_errors -= self.base[0]
                    del self.base[0]

    def rate0(self) -> float:
        """Baseline error rate, shrunk towards a prior rate that is also its floor.

        A few hundred probes say little about a rate near 0.3%; without the floor, two
        errors in ten probes would look like an incident once a week."""
        w = self.p.error_prior_weight
        shrunk = (self.base_errors + w * self.p.error_prior_rate) / (len(self.base) + w)
        return max(shrunk, self.p.error_prior_rate)

    def status(self, fdr_q: float = 1e-4) -> Status:
        n_b = len(self.base)
        p0 = self.rate0()
        if not self.ready() or not self.recent:
            return Status(1.0, 0.0, 0.0, True, p0, math.nan, n_b, len(self.recent), False)
        rec = list(self.recent)
        windows = [w for w in self.p.error_windows if w <= len(rec)] or [len(rec)]
        best = (1.0, 0.0, len(rec))
        exit_ok = True
        for w in windows:
            x = sum(rec[-w:])
            pv = binom_sf(x, w, p0) if x > 0 else 1.0  # P(X >= x)
            diff = x / w - p0
            if pv < best[0]:
                best = (pv, diff, w)
            if pv < self.p.exit_alpha and diff >= self.p.exit_fraction * self.p.min_error_effect:
                exit_ok = False
        pv, diff, w = best
        pv = max(min(1.0, pv * len(windows)), _P_FLOOR)
        if pv >= 1.0:  # nothing significant: report the shortest window
            w = windows[0]
            diff = sum(rec[-w:]) / w - p0
        ratio = diff / self.p.min_error_effect if self.p.min_error_effect > 0 else math.inf
        return Status(pv, diff, ratio, exit_ok, p0, diff + p0, n_b, w, True)

    def enter(self, now: float) -> None:
        self.anomalous = True
        self.since = now
        self.pending = bytearray()

    def leave(self) -> None:
        self.anomalous = False
        self.since = None
        self.calm_since = None
        self.pending = bytearray()

    def to_state(self) -> dict[str, Any]:
        return {
            "base": "".join(map(str, self.base)),
            "pending": "".join(map(str, self.pending)),
            "recent": "".join(map(str, self.recent)),
            "anomalous": self.anomalous,
            "since": self.since,
            "calm_since": self.calm_since,
            "last_t": self.last_t,
            "gaps": self.dt.to_state(),
        }

    def load_state(self, st: dict[str, Any]) -> None:
        self.base = bytearray(int(c) for c in st.get("base", ""))
        self.base_errors = sum(self.base)
        self.pending = bytearray(int(c) for c in st.get("pending", ""))
        self.recent = bytearray(int(c) for c in st.get("recent", ""))
        _trim(self.recent, max(self.p.error_windows))
        self.anomalous = bool(st.get("anomalous", False))
        self.since = st.get("since")
        self.calm_since = st.get("calm_since")
        self.last_t = float(st.get("last_t", 0.0))
        self.dt = _Interval()
        self.dt.load(st.get("gaps", []), self.last_t)
