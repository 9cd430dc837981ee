"""The series budget of `metrics.detail`: every sample line carrying one target's labels,
counted on the real exposition with every per-target family at its worst case."""

from __future__ import annotations

import dataclasses

import prometheus_client.metrics as pm
import pytest

from core.result import Outcome
from daemon.exposition import render
from daemon.metrics import DETAIL_LEVELS, Metrics
from detector.config import METRICS as DETECTOR_METRICS
from tests.factories import result

SKIP_REASONS = ("overlap", "missed", "budget_tokens", "budget_cost", "budget_provider_tokens",
                "budget_provider_cost", "rate_limit")
BUDGET = {"minimal": 15, "standard": 50, "full": 450}


def series_of_one_target(detail: str) -> int:
    m = Metrics(detail=detail)
    for i in range(20):
        r = result(0.2 + i / 10, itls=(0.01, 0.02, 0.5), output_tokens=16, input_tokens=9)
        r = dataclasses.replace(r, connect=0.01, tls=0.02,
                                rate_limit={"x-ratelimit-remaining-requests": "99", "x-ratelimit-remaining-tokens": "9e3"})
        m.observe(dataclasses.replace(r, outcome=Outcome.HTTP_ERROR), cost_usd=None)
        m.observe(dataclasses.replace(r, usage_clamped=True), cost_usd=0.001)  # the last probe succeeded: every phase gauge is present
    labels = (r.provider, r.model, r.probe, r.region)
    for metric in DETECTOR_METRICS:
        m.anomaly.labels(*labels, metric).set(0.5)
    for reason in SKIP_REASONS:
        m.skipped.labels(*labels, reason).inc()
    mark = f'provider="{r.provider}"'
    return sum(1 for line in render(m.registry).decode().splitlines() if not line.startswith("#") and mark in line)


@pytest.mark.parametrize("detail", DETAIL_LEVELS)
def test_series_per_target_within_budget(detail: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pm, "_use_created", False)  # what the daemon runs with
    n = series_of_one_target(detail)
    assert n <= BUDGET[detail], (detail, n)
    print(f"{detail}: {n} series per target")


def test_levels_are_nested_and_standard_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pm, "_use_created", False)
    counts = [series_of_one_target(d) for d in DETAIL_LEVELS]
    assert counts == sorted(counts) and counts[0] >= 10
    assert Metrics().detail == "standard"


def sweep_levels(concurrency: tuple[int, ...], sizes: tuple[int | None, ...] = (None,)) -> list[dict[str, object]]:
    return [{"concurrency": c, "prompt_tokens": p, "ttft_p50": 0.1 * c, "ttft_p95": 0.2 * c,
             "aggregate_output_tps": 50.0 * c} for p in sizes for c in concurrency]


@pytest.mark.parametrize("detail", DETAIL_LEVELS)
def test_sweep_series_are_per_sweep_and_counted(detail: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sweep's series carry `sweep`, not a target's labels (they are not in a target's
    count): 3 per level and prompt size (standard and up), plus its knee, last run time, 5
    outcome states and one counter per outcome seen. A later run with fewer levels leaves
    no stale level behind."""
    monkeypatch.setattr(pm, "_use_created", False)
    m = Metrics(detail=detail)
    sat = {"concurrency": 8, "prompt_tokens": None, "reason": "x"}
    m.sweep_done("nightly", "p/m/short", 1e9, "ok", sweep_levels((1, 2, 4, 8, 16, 32), (None, 1000)), sat)

    def lines() -> list[str]:
        text = render(m.registry).decode()
        return [ln for ln in text.splitlines() if not ln.startswith("#") and 'sweep="nightly"' in ln]

    per_level = 3 if detail != "minimal" else 0
    assert len(lines()) == per_level * 12 + 1 + 1 + 5 + 1, lines()
    assert not [ln for ln in lines() if 'provider="' in ln]
    m.sweep_done("nightly", "p/m/short", 2e9, "partial", sweep_levels((1, 2)), None)
    assert len(lines()) == per_level * 2 + 1 + 1 + 5 + 2
    assert 'llm_vitals_sweep_saturation_concurrency{sweep="nightly",target="p/m/short"} +Inf' in lines()
    m.forget_sweep("nightly")
    assert lines() == []
