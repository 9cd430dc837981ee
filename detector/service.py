"""Detector: per-series baseline of recent healthy behaviour vs the latest probes.

Series: every target ("provider/model/probe") x metric in METRICS. ttft, e2e and itl
(the probe's itl_p50, else itl_mean) are anomalous when they rise, output_tps when it
falls; "error" is 1 for a probe whose outcome is not ok. Only ok probes feed the latency
series. The statistics live in `detector.core` (rank-CUSUM for latencies,
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
import json
import math
import time
from collections.abc import Generator, Mapping
from typing import Any, Protocol

from core.loopslice import SLICE, LoopSlice
from core.result import ProbeResult
from core.store import Store
from detector.config import DetectorConfig
from detector.core import ErrorSeries, LatencySeries, Status, benjamini_hochberg, decide
from detector.verdict import AnomalyVerdict


class ScoreGauge(Protocol):
    """Where scores are exported (the daemon's Prometheus gauge): provider, model, probe,
    region, metric -> score."""

    def set_key(self, key: tuple[str, str, str, str, str], value: float) -> None: ...


STATE_PREFIX = "detector:"
STATE_INDEX = "detector:index"
STATE_VERSION = 1
# CPU seconds one save_async may spend (the daemon calls it every 30 s: ~3% of a core)
SAVE_BUDGET = 1.0
# A target saved less than this long ago waits for a later save_async (the shutdown save
# writes it whatever its age). At one probe a minute and a save every 30 s, every probe
# would otherwise re-encode its target's whole state: 1.0-1.4 ms of loop CPU a probe for a
# fresh target (200 targets, first save and re-save), a tenth of a probe's cost at 1,000
# targets (bench/capacity.py). A crash loses at most this much learning, against baselines
# that span hours and days.
RESAVE_AFTER = 300.0


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
        # log of each family's FDR level (error series or not), the score's denominator
        self._log_level = {False: math.log(cfg.fdr_q), True: math.log(cfg.error_fdr_q)}
        self.series: dict[tuple[str, str], LatencySeries | ErrorSeries] = {}
        self.labels: dict[str, dict[str, str]] = {}
        self._dirty: set[str] = set()
        self._saved: set[str] = set()
        self._saved_at: dict[str, float] = {}  # monotonic time of a target's last save_async

    # -- feeding ----------------------------------------------------------------------
    def _get(self, target: str, metric: str, *, direction: int | None = None,
             log_scale: bool = True, single_probes: bool = True) -> LatencySeries | ErrorSeries:
        key = (target, metric)
        s = self.series.get(key)
        if s is None:
            if metric == "error":
                s = ErrorSeries(self._params)
            else:
                if direction is None:
                    direction = -1 if metric == "output_tps" else 1
                s = LatencySeries(self._params, direction=direction, log_scale=log_scale,
                                  single_probes=single_probes)
            self.series[key] = s
        return s

    def observe_value(self, target: str, metric: str, t: float, value: float, *,
                      direction: int = 1, log_scale: bool = True, single_probes: bool = False) -> None:
        """One observation of any numeric series (`detect` replays files through this).

        direction: +1 anomalous when it rises, -1 when it falls, 0 either way; log_scale
        judges relative changes (positive values only), else raw values in robust sigmas;
        single_probes: every row is one probe (as the daemon's own series are), else a row
        spanning k probe intervals is an aggregate of k probes (an hourly mean).
        The series is created on its first value with these; later calls reuse it."""
        if not self.cfg.enabled:
            return
        s = self._get(target, metric, direction=direction, log_scale=log_scale, single_probes=single_probes)
        assert isinstance(s, LatencySeries)
        s.observe(t, value)
        self._dirty.add(target)

    def observe(self, result: ProbeResult) -> None:
        if not self.cfg.enabled:
            return
        target = result.target
        self.labels[target] = result.labels
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

    def export_scores(self, verdicts: Mapping[tuple[str, str], AnomalyVerdict], gauge: ScoreGauge) -> None:
        """Each series' score onto the anomaly gauge, keyed by the target's labels and the
        metric (5,000 series at 1,000 targets: row keys straight, no label children)."""
        for (target, metric), v in verdicts.items():
            lab = self.labels.get(target)
            if lab is not None:
                gauge.set_key((lab["provider"], lab["model"], lab["probe"], lab["region"], metric), v.score)

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
        # Two BH families: latency-like series (approximate CUSUM tails, hence the small
        # level) and error series (exact binomial tails). FDR <= fdr_q + error_fdr_q.
        qs = [1.0] * len(items)
        is_error = [k[1] == "error" for k, _ in items]
        for family in (False, True):
            idx = [i for i, e in enumerate(is_error) if e is family]
            if idx:
                for i, q in zip(idx, benjamini_hochberg([statuses[i].p_value for i in idx]), strict=True):
                    qs[i] = q
        out: dict[tuple[str, str], AnomalyVerdict] = {}
        for (key, s), st, q, err in zip(items, statuses, qs, is_error, strict=True):
            if self.series.get(key) is not s:
                continue
            out[key] = self._verdict(key, s, st, q, err, now)
            yield
        return out

    def evaluate_one(self, target: str, metric: str, now: float) -> AnomalyVerdict | None:
        """`evaluate` of a detector that holds this one series (its own BH family), for
        `detect`, which replays one series a detector: the same verdict, without a pass
        over every series and a dict a row (14% of detect's time). None when the series
        does not exist (the detector is disabled)."""
        key = (target, metric)
        s = self.series.get(key)
        if s is None:
            return None
        st = s.status(self.cfg.fdr_q)
        q = benjamini_hochberg([st.p_value])[0]
        return self._verdict(key, s, st, q, metric == "error", now)

    def _verdict(self, key: tuple[str, str], s: LatencySeries | ErrorSeries, st: Status, q: float,
                 err: bool, now: float) -> AnomalyVerdict:
        """Apply one series' status and q-value to its state (enter, leave), and say so."""
        level = self.cfg.error_fdr_q if err else self.cfg.fdr_q
        sig = math.log(max(q, 1e-300)) / self._log_level[err]
        raw = max(0.0, min(sig, st.effect_ratio), st.record_ratio) if st.ready else 0.0
        if decide(s, st, q, level, now, self.threshold):
            self._dirty.add(key[0])
        score = max(raw, 1.0) if s.anomalous else min(raw, math.nextafter(1.0, 0.0))
        return AnomalyVerdict(
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
            ready=st.ready,
        )

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
                self.store.delete_states([STATE_PREFIX + t for t in stale])
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

    def _take_dirty(self) -> tuple[list[str], list[str] | None]:
        """The targets to save, least recently saved first (a save cut short by its budget
        or deadline leaves the freshest), and the new index when a target is new to it."""
        dirty, self._dirty = self._dirty, set()
        index = None
        if dirty - self._saved:
            self._saved |= dirty
            index = sorted(self._saved)
        return sorted(dirty, key=lambda t: (self._saved_at.get(t, -math.inf), t)), index

    def save(self, deadline: float | None = None) -> int:
        """Persist baselines of targets that changed since the last save (at shutdown),
        least recently saved first, until `deadline` (time.monotonic()) if given, at least
        one. Returns how many were left: they keep their last saved state (the rolling
        save_async's), losing what a crash would. After a week of 1-minute probes a target
        is ~0.12 s of CPU to encode, so 1,000 of them would outlast any stop timeout."""
        if self.store is None:
            return 0
        targets, index = self._take_dirty()
        grouped = self._grouped(targets)
        done = 0
        try:
            for t in targets:
                if done and deadline is not None and time.monotonic() >= deadline:
                    break
                self.store.put_state(STATE_PREFIX + t, self._state(t, grouped[t]))
                self._saved_at[t] = time.monotonic()
                done += 1
            if index is not None:
                self.store.put_state(STATE_INDEX, index)
        finally:
            self._dirty.update(targets[done:])  # written next time, if there is one
        return len(targets) - done

    async def save_async(self, slice_s: float = SLICE, budget_s: float = SAVE_BUDGET,
                         min_age: float = RESAVE_AFTER) -> None:
        """`save` for the running daemon: the series keep changing on the loop, so they are
        copied and encoded there, a series per loop step at most, and only the SQLite
        writes go to a thread (JSON encoding there held the GIL for the whole state).

        At most `budget_s` seconds of CPU a call, least recently saved targets first; the
        rest stay dirty for the next call. A target's state grows with its seasonal
        history: after a week of 1-minute probes it is ~0.8 MB of JSON and ~0.12 s of CPU
        to build, so saving every target probed in the last 30 s would take far more
        than 30 s. A crash loses at most the updates since a target's last save; a
        shutdown (save()) writes every dirty target.

        A target saved less than `min_age` seconds ago stays dirty until a later call."""
        if self.store is None:
            return
        targets, index = self._take_dirty()
        done = 0
        if min_age > 0:
            now = time.monotonic()
            recent = {t for t in targets if now - self._saved_at.get(t, -math.inf) < min_age}
            if recent:
                self._dirty |= recent
                targets = [t for t in targets if t not in recent]
        try:
            grouped = self._grouped(targets)
            rows: list[tuple[str, str]] = []
            loop_slice = LoopSlice(slice_s)
            spent = 0.0
            for t in targets:
                if done and spent >= budget_s:  # one target a call at least: saving always moves on
                    break
                parts = []
                for metric, series in grouped[t]:
                    c0 = time.thread_time()
                    parts.append(f"{json.dumps(metric)}: {json.dumps(series.to_state())}")
                    spent += time.thread_time() - c0  # ours only: the pause runs other tasks
                    await loop_slice.pause()
                head = json.dumps({"v": STATE_VERSION, "labels": dict(self.labels.get(t, {}))})
                # the same JSON as put_state(json.dumps(self._state(...))) writes
                rows.append((STATE_PREFIX + t, f'{head[:-1]}, "series": {{{", ".join(parts)}}}}}'))
                done += 1
            if index is not None:
                rows.append((STATE_INDEX, json.dumps(index)))
            await asyncio.to_thread(self.store.put_states_json, rows)
            now = time.monotonic()
            for t in targets[:done]:
                self._saved_at[t] = now
        except BaseException:
            done = 0
            raise
        finally:
            self._dirty.update(targets[done:])  # written next time

    async def adopt_async(self, old: Detector, slice_s: float = SLICE) -> None:
        """Take over a running detector's series under new settings (a config reload), as
        `load` would from the store but from memory, a series per loop step: loading 1,000
        week-old targets at once would hold the loop for seconds. Every target is dirty:
        its state under the new settings is saved by the next saves."""
        loop_slice = LoopSlice(slice_s)
        self.labels.update({t: dict(lab) for t, lab in old.labels.items()})
        self._saved |= old._saved
        for (target, metric), series in list(old.series.items()):
            if metric in self.cfg.metrics:
                # through JSON, exactly the state `load` would read back
                self._get(target, metric).load_state(json.loads(json.dumps(series.to_state())))
                self._dirty.add(target)
            await loop_slice.pause()

    def load(self) -> None:
        """Restore baselines saved by `save` (missing or foreign-version state is ignored)."""
        if self.store is None:
            return
        for target in self.store.get_state(STATE_INDEX, []) or []:
            self._restore(target, self.store.get_state(STATE_PREFIX + target))

    async def load_async(self, slice_s: float = SLICE) -> None:
        """`load` in a running daemon (the detector switched on by a reload), a target per
        loop step: 1,000 week-old targets at once would hold the probes for seconds. The
        store is read on a worker thread, where a read may wait for the result writer's
        commit (the store's lock) without holding the loop."""
        store = self.store
        if store is None:
            return
        loop_slice = LoopSlice(slice_s)
        for target in await asyncio.to_thread(store.get_state, STATE_INDEX, []) or []:
            self._restore(target, await asyncio.to_thread(store.get_state, STATE_PREFIX + target))
            await loop_slice.pause()

    def _restore(self, target: str, st: Any) -> None:
        if not isinstance(st, dict) or st.get("v") != STATE_VERSION:
            return
        self._saved.add(target)
        self.labels[target] = dict(st.get("labels") or {})
        for metric, sst in (st.get("series") or {}).items():
            if metric in self.cfg.metrics:
                self._get(target, metric).load_state(sst)
