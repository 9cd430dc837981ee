"""Rule evaluation: each rule x each target → a Finding (condition true or not, how bad).

Kinds (docs/architecture.md §5): threshold on a windowed statistic, error_rate, consecutive_failures,
content_mismatch, burn_rate (multiwindow, multi-burn-rate), anomaly (detector verdict),
no_data. Built-in defaults apply when no rules are configured (see DEFAULT_RULES).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from typing import Protocol

from alerts.config import Rule
from alerts.history import TargetHistory
from alerts.model import Finding
from detector.config import METRICS as DETECTOR_METRICS
from detector.verdict import AnomalyVerdict

OPS: dict[str, Callable[[float, float], bool]] = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}

# Used when `alerts.rules` is empty and `use_default_rules` is on.
DEFAULT_RULES: list[Rule] = [
    Rule(name="target-down", kind="consecutive_failures", count=3, labels={"severity": "page"},
         annotations={"summary": "3 probes in a row failed"}),
    Rule(name="error-rate-high", kind="error_rate", value=0.2, window=900, min_probes=5, **{"for": 120},
         labels={"severity": "page"}),
    Rule(name="wrong-answers", kind="content_mismatch", count=3, labels={"severity": "ticket"}),
    Rule(name="ttft-anomaly", kind="anomaly", metric="ttft", **{"for": 60}, labels={"severity": "ticket"}),
    Rule(name="no-data", kind="no_data", window=600, labels={"severity": "ticket"}),
]


class StatsSource(Protocol):
    def stat(self, target: str, metric: str, stat: str, window_seconds: float) -> float | None: ...

    def count(self, target: str, metric: str, window_seconds: float) -> int: ...


def _fmt(metric: str | None, v: float | None) -> str:
    if v is None:
        return "n/a"
    if metric == "output_tps":
        return f"{v:.1f} tok/s"
    return f"{v * 1000:.0f} ms" if v < 1 else f"{v:.2f} s"


def baseline_ready(v: AnomalyVerdict) -> bool:
    """Whether a verdict's baseline is a learnt, healthy one (see AnomalyVerdict.ready)."""
    return v.ready and math.isfinite(v.baseline) and math.isfinite(v.recent)


def matches(labels: Mapping[str, str], match: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in match.items())


def evaluate(rule: Rule, key: str, h: TargetHistory, stats: StatsSource,
             verdicts: Mapping[tuple[str, str], AnomalyVerdict], now: float) -> Finding | None:
    if not matches(h.labels, rule.match):
        return None
    labels = {**h.labels, **rule.labels}
    labels.setdefault("severity", "page")

    def finding(active: bool, value: float | None, summary: str, reason: str | None = None) -> Finding:
        return Finding(rule.name, labels, active, value, summary, reason if reason is not None else h.last_error)

    kind = rule.kind
    if kind == "threshold":
        assert rule.metric is not None and rule.value is not None
        if stats.count(key, rule.metric, rule.window) < rule.min_probes:
            return finding(False, None, "not enough probes")
        v = stats.stat(key, rule.metric, rule.stat, rule.window)
        if v is None:
            return finding(False, None, "no data")
        base = verdicts.get((key, rule.metric))
        vs = ""
        if base is not None and base.baseline:
            vs = (f" (baseline {_fmt(rule.metric, base.baseline)})" if baseline_ready(base)
                  else " (no baseline yet: the detector is still learning this target)")
        summary = (f"{rule.metric} {rule.stat} over {int(rule.window)}s = {_fmt(rule.metric, v)} "
                   f"{rule.op} {_fmt(rule.metric, rule.value)}{vs}")
        return finding(OPS[rule.op](v, rule.value), v, summary, reason="")
    if kind == "error_rate":
        bad, total = h.error_rate(rule.window, now)
        rate = bad / total if total else 0.0
        active = total >= rule.min_probes and OPS[rule.op](rate, rule.value or 0.0)
        return finding(active, rate, f"error rate {rate:.0%} over {int(rule.window)}s ({bad}/{total} probes failed)")
    if kind == "consecutive_failures":
        return finding(h.fail_streak >= rule.count, float(h.fail_streak), f"{h.fail_streak} probes in a row failed")
    if kind == "content_mismatch":
        return finding(h.mismatch_streak >= rule.count, float(h.mismatch_streak),
                       f"{h.mismatch_streak} replies in a row failed their expectation")
    if kind == "no_data":
        age = now - h.last_seen
        return finding(age > rule.window, age, f"no probe result for {int(age)}s")
    if kind == "anomaly":
        metrics = [rule.metric] if rule.metric else list(DETECTOR_METRICS)
        hits = [(m, verdicts[(key, m)]) for m in metrics if (key, m) in verdicts]
        hot = [(m, v) for m, v in hits if v.anomalous]
        if not hot:
            return finding(False, max((v.score for _, v in hits), default=0.0), "normal", reason="")
        m, top = max(hot, key=lambda mv: mv[1].score)
        summary = (f"{m} anomalous: {_fmt(m, top.recent)} vs baseline {_fmt(m, top.baseline)} "
                   f"({top.effect:+.0%}, score {top.score:.1f})")
        return finding(True, top.score, summary, reason="")
    if kind == "burn_rate":
        return _burn(rule, h, now, finding)
    raise ValueError(f"unknown rule kind {kind}")


def _burn(rule: Rule, h: TargetHistory, now: float, finding: Callable[..., Finding]) -> Finding:
    obj = rule.objective
    assert obj is not None
    budget = 1.0 - obj.target
    latency = (obj.metric, obj.threshold) if obj.type == "latency" else None
    worst: tuple[float, str] | None = None
    severity = None
    for cls, pairs in (("page", obj.page), ("ticket", obj.ticket)):
        for long_w, short_w, factor in pairs:
            long_r, n_long = h.bad_ratio(long_w, now, latency)
            short_r, _ = h.bad_ratio(short_w, now, latency)
            burn_long, burn_short = long_r / budget, short_r / budget
            if n_long and burn_long >= factor and burn_short >= factor:
                if severity is None:
                    severity = cls
                desc = f"burning the {obj.type} error budget {burn_long:.1f}x over {int(long_w)}s (>= {factor}x)"
                if worst is None or burn_long > worst[0]:
                    worst = (burn_long, desc)
    if worst is None:
        return finding(False, 0.0, "within budget")
    f = finding(True, worst[0], worst[1])
    if "severity" not in rule.labels and severity is not None:
        f.labels["severity"] = severity
    return f
