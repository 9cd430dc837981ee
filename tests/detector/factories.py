"""Shared helpers for the detector tests."""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from core.result import Outcome, ProbeResult, TokensSource
from detector.core import LatencySeries, decide
from detector.params import Params
from detector.service import Detector


class Feed:
    """Seeded synthetic probes, one a minute: lognormal ttft (median 400 ms) with a tail."""

    def __init__(self, seed: int, sigma: float = 0.12, tail: float = 0.02, error_rate: float = 0.003) -> None:
        self.rng = np.random.default_rng(seed)
        self.sigma = sigma
        self.tail = tail
        self.error_rate = error_rate
        self.i = 0

    def probe(self, *, model: str = "m", ttft_x: float = 1.0, tps_x: float = 1.0, error_rate: float | None = None,
              i: int | None = None) -> ProbeResult:
        rng = self.rng
        ttft = 0.4 * float(np.exp(rng.normal(0, self.sigma))) * ttft_x
        if rng.random() < self.tail:
            ttft *= 1.5 * (1 + float(rng.pareto(1.5)))
        itl = 0.02 * float(np.exp(rng.normal(0, 0.1))) / tps_x
        tokens = int(rng.integers(12, 21))
        err = rng.random() < (self.error_rate if error_rate is None else error_rate)
        idx = self.i if i is None else i
        common = dict(provider="p", model=model, probe="short", region="r1",
                      started_at=datetime.fromtimestamp(T0 + 60.0 * idx, UTC))
        if err:
            return ProbeResult(outcome=Outcome.HTTP_ERROR, status_code=503, **common)  # type: ignore[arg-type]
        gen = itl * (tokens - 1)
        return ProbeResult(outcome=Outcome.OK, status_code=200, ttft=ttft, e2e=ttft + gen, itl_p50=itl,
                           itl_mean=itl, output_tokens=tokens, tokens_source=TokensSource.USAGE,
                           output_tps=(tokens - 1) / gen, **common)  # type: ignore[arg-type]

    def run(self, det: Detector, n: int, models: tuple[str, ...] = ("m",), **kw: Any) -> list[dict]:
        """n probes per model, evaluating after each minute; returns every evaluation."""
        out = []
        for _ in range(n):
            for model in models:
                det.observe(self.probe(model=model, **kw))
            out.append(det.evaluate(now=T0 + 60.0 * self.i))
            self.i += 1
        return out


def first_anomalous(evals: list[dict], key: tuple[str, str]) -> int | None:
    for n, verdicts in enumerate(evals, start=1):
        if verdicts[key].anomalous:
            return n
    return None


TTFT = ("p/m/short", "ttft")


DAY = 86400.0


STEP = 300.0  # one value every 5 minutes


def raw_params(**kw: float) -> Params:
    # windows in rows (5-minute rows), as these tests were written
    base = dict(raw_min_effect=2.0, design_effect=2.0, short_baseline=576, baseline_size=1152, baseline_min=288,
                recent=5, quarantine=10, slow_window=30, baseline_max_age=math.inf, exit_hold=12 * 3600.0)
    base.update(kw)
    return Params(**base)  # type: ignore[arg-type]


def daily(rng: np.random.Generator, n: int, start: int = 0) -> np.ndarray:
    """High (80) from 08:00 to 18:00, low (20) otherwise, Gaussian noise (sd 1.5)."""
    phase = ((np.arange(start, start + n) * STEP) % DAY) / 3600.0
    level = np.where((phase >= 8) & (phase < 18), 80.0, 20.0)
    return level + 1.5 * rng.standard_normal(n)


def run(series: LatencySeries, values: np.ndarray, start: int = 0, threshold: float = 1.0) -> list[int]:
    """Feed values (5-minute rows from `start`); the rows where the series starts an anomaly."""
    pages = []
    for i, v in enumerate(values, start=start):
        t = STEP * i
        series.observe(t, float(v))
        st = series.status(1e-5)
        was = series.anomalous
        decide(series, st, st.p_value, 1e-5, t, threshold)
        if series.anomalous and not was:
            pages.append(i)
    return pages


T0 = 1_700_000_000.0


def write_csv(path: Path, values: np.ndarray, *, rfc3339: bool = False, extra: bool = False,
              t0: float = 1_700_000_000.0, step: float = 60.0) -> Path:
    """A `detect` input: one row a `step` (a minute) from t0 (an extra leading column when asked)."""
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["host", "timestamp", "value"] if extra else ["timestamp", "value"])
        for i, v in enumerate(values):
            dt = datetime.fromtimestamp(t0 + step * i, UTC)
            ts = dt.strftime("%Y-%m-%dT%H:%M:%SZ") if rfc3339 else dt.strftime("%Y-%m-%d %H:%M:%S")
            w.writerow(["a", ts, f"{v:.6f}"] if extra else [ts, f"{v:.6f}"])
    return path
