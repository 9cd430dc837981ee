"""Per-target probe history for rules: outcome streaks, windowed error rates, burn-rate
buckets up to 3 days, and when a target last reported. Fed by observe(), no I/O."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from core.result import Outcome, ProbeResult

BUCKET = 60.0  # burn-rate buckets (good, bad, slow) per minute
MAX_AGE = 3 * 86400.0 + BUCKET


# A latency objective judges each probe on one of its fields. `itl` has no single value
# per probe: a probe is slow when its own 95th-percentile gap is. Throughput is slow when
# it falls to the threshold or below; every other metric when it reaches it.
_OBJECTIVE_FIELDS = {"itl": "itl_p95"}
HIGHER_IS_BETTER = frozenset({"output_tps"})


def objective_field(metric: str) -> str:
    return _OBJECTIVE_FIELDS.get(metric, metric)


def is_slow(metric: str, value: float, threshold: float) -> bool:
    return value <= threshold if metric in HIGHER_IS_BETTER else value >= threshold


@dataclass
class TargetHistory:
    labels: dict[str, str]
    last_seen: float = 0.0
    fail_streak: int = 0
    mismatch_streak: int = 0
    last_error: str | None = None
    recent: deque[tuple[float, bool]] = field(default_factory=lambda: deque(maxlen=10_000))
    # Latency objectives to count (metric, threshold): counting slow probes per bucket keeps
    # 3 days of history small, instead of keeping every probe's latencies.
    objectives: frozenset[tuple[str, float]] = frozenset()
    # minute buckets: [start, total, failed, {(metric, threshold): ok probes at or over it}]
    buckets: deque[list] = field(default_factory=deque)  # type: ignore[type-arg]
    latencies: deque[tuple[float, float | None]] = field(default_factory=lambda: deque(maxlen=10_000))

    def observe(self, r: ProbeResult, at: float) -> None:
        self.last_seen = at
        ok = r.ok
        self.fail_streak = 0 if ok else self.fail_streak + 1
        self.mismatch_streak = self.mismatch_streak + 1 if r.outcome is Outcome.CONTENT_MISMATCH else 0
        if not ok:
            self.last_error = f"{r.outcome.value}: {r.error}" if r.error else r.outcome.value
        self.recent.append((at, ok))
        start = at - at % BUCKET
        if not self.buckets or self.buckets[-1][0] != start:
            self.buckets.append([start, 0, 0, {}])
        b = self.buckets[-1]
        b[1] += 1
        b[2] += 0 if ok else 1
        if ok:
            for metric, threshold in self.objectives:
                v = getattr(r, objective_field(metric), None)
                if v is not None and is_slow(metric, v, threshold):
                    b[3][(metric, threshold)] = b[3].get((metric, threshold), 0) + 1
        while self.buckets and self.buckets[0][0] < at - MAX_AGE:
            self.buckets.popleft()

    def restore(self, recent: list[tuple[float, bool]], buckets: list[list]) -> None:  # type: ignore[type-arg]
        """Windows rebuilt from the stored probe results at start (older than anything
        observed since): the error-rate window and the burn-rate buckets."""
        room = (self.recent.maxlen or len(recent) + len(self.recent)) - len(self.recent)
        first_t = self.recent[0][0] if self.recent else float("inf")
        older = [x for x in recent if x[0] < first_t]
        self.recent.extendleft(reversed(older[len(older) - room:] if room < len(older) else older))
        first = self.buckets[0][0] if self.buckets else float("inf")
        self.buckets.extendleft(reversed([b for b in buckets if b[0] < first]))

    def error_rate(self, window: float, now: float) -> tuple[int, int]:
        """(failures, probes) over the last `window` seconds."""
        total = bad = 0
        for t, ok in reversed(self.recent):
            if t < now - window:
                break
            total += 1
            bad += 0 if ok else 1
        return bad, total

    def bad_ratio(self, window: float, now: float, latency: tuple[str, float] | None = None) -> tuple[float, int]:
        """Share of bad probes over `window`: failed, or (latency objective) failed or at or
        over the objective's threshold on its metric."""
        total = bad = 0
        for start, n, failed, slow in reversed(self.buckets):
            if start + BUCKET <= now - window:
                break
            total += n
            bad += failed + (slow.get(latency, 0) if latency is not None else 0)
        return (bad / total if total else 0.0), total
