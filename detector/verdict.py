"""What the detector says about one series at one evaluation: the alert rules' typed input."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AnomalyVerdict:
    target: str
    metric: str
    anomalous: bool
    score: float  # >= 1.0 means anomalous
    p_value: float
    q_value: float
    effect: float  # relative median change (latency, tps) or error-rate increase
    baseline: float  # baseline median (seconds, tokens/s) or error rate
    recent: float  # recent median or error rate
    n_baseline: int
    n_recent: int
    since: float | None  # unix time the current anomaly started
    # the baseline is a learnt one (False during warm-up, when `baseline` is the median of
    # the few probes seen so far and quoting it as "the baseline" would mislead)
    ready: bool = True
