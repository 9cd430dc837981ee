"""Scheduler behaviour with a stand-in probe (the real probe path is tested elsewhere)."""

from __future__ import annotations

import asyncio

import pytest

import daemon.scheduler as sched_mod
from core.result import ProbeResult
from daemon.budget import BudgetTracker
from daemon.config import Budgets
from daemon.metrics import Metrics
from daemon.scheduler import ProbeScheduler, ProviderRateLimit, Scheduled
from probes.clients import ClientPool
from probes.target import ProbeSpec, ProbeTarget, ProviderSpec
from tests.factories import result


def target(model: str, provider: str = "p") -> ProbeTarget:
    return ProbeTarget(ProviderSpec(provider, "openai", "http://127.0.0.1:9"), model, ProbeSpec())


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    v = metrics.registry.get_sample_value(name, labels)
    return 0.0 if v is None else v


@pytest.fixture
def fake_probe(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    delays: dict[str, float] = {}
    running: dict[str, int] = {}

    async def run_probe(client: object, t: ProbeTarget) -> ProbeResult:
        running[t.key] = running.get(t.key, 0) + 1
        assert running[t.key] == 1, "two probes of one target at once"
        await asyncio.sleep(delays.get(t.model, 0.01))
        running[t.key] -= 1
        return result(0.1, provider=t.provider.name, model=t.model)

    monkeypatch.setattr(sched_mod, "run_probe", run_probe)
    return delays


async def test_overlapping_runs_are_skipped_and_counted(fake_probe: dict[str, float]) -> None:
    m = Metrics()
    got: list[ProbeResult] = []
    fake_probe["slow"] = 0.7
    s = ProbeScheduler(ClientPool(), m, got.append, BudgetTracker(Budgets(), m), max_concurrency=10)  # type: ignore[arg-type]
    s.set_jobs([Scheduled(target("slow"), interval=0.2, jitter=0), Scheduled(target("fast"), interval=0.2, jitter=0)])
    s.start()
    await asyncio.sleep(2.0)
    s.pause()
    await s.drain(2)
    slow = [r for r in got if r.model == "slow"]
    fast = [r for r in got if r.model == "fast"]
    assert 1 <= len(slow) <= 3
    assert len(fast) >= 5
    assert sample(m, "llm_vitals_probes_skipped_total", provider="p", model="slow", probe="short",
                  region="local", reason="overlap") >= 1
    assert sample(m, "llm_vitals_scheduler_lag_seconds_count") >= len(got) - 1


async def test_global_concurrency_limit_shows_as_lag(fake_probe: dict[str, float]) -> None:
    m = Metrics()
    got: list[ProbeResult] = []
    for i in range(6):
        fake_probe[f"m{i}"] = 0.5
    s = ProbeScheduler(ClientPool(), m, got.append, BudgetTracker(Budgets(), m), max_concurrency=2)  # type: ignore[arg-type]
    s.set_jobs([Scheduled(target(f"m{i}"), interval=10, jitter=0) for i in range(6)])
    s.start()
    await asyncio.sleep(3.5)
    s.pause()
    await s.drain(2)
    assert len(got) == 6
    # 6 probes of 0.5 s through 2 slots: the last ones start >= 1 s late, and that is measured
    assert max(s.lag_samples) >= 0.9


async def test_budget_pauses_probing(fake_probe: dict[str, float]) -> None:
    m = Metrics()
    got: list[ProbeResult] = []
    budget = BudgetTracker(Budgets(daily_tokens=50), m)
    s = ProbeScheduler(ClientPool(), m, lambda r: (got.append(r), budget.add(r, None)), budget, max_concurrency=4)  # type: ignore[arg-type]
    s.set_jobs([Scheduled(target("a"), interval=0.2, jitter=0)])
    s.start()
    await asyncio.sleep(1.6)
    s.pause()
    await s.drain(1)
    # each fake result costs 30 tokens: the second one crosses 50, then probing pauses
    assert len(got) == 2
    assert sample(m, "llm_vitals_budget_paused", budget="tokens") == 1
    assert sample(m, "llm_vitals_probes_skipped_total", provider="p", model="a", probe="short",
                  region="local", reason="budget_tokens") >= 1


def test_rate_limit_spaces_starts() -> None:
    lim = ProviderRateLimit(per_minute=120)
    waits = [lim.reserve() for _ in range(4)]
    assert waits[0] == pytest.approx(0, abs=0.01)
    assert waits[3] == pytest.approx(1.5, abs=0.05)


async def test_set_jobs_diff_keeps_unchanged(fake_probe: dict[str, float]) -> None:
    m = Metrics()
    s = ProbeScheduler(ClientPool(), m, lambda r: None, BudgetTracker(Budgets(), m), max_concurrency=4)  # type: ignore[arg-type]
    a, b = Scheduled(target("a"), 60, 0.1), Scheduled(target("b"), 60, 0.1)
    assert s.set_jobs([a, b])["added"] == ["p/a/short", "p/b/short"]
    diff = s.set_jobs([a, Scheduled(target("b"), 30, 0.1), Scheduled(target("c"), 60, 0.1)])
    assert diff == {"added": ["p/c/short"], "removed": [], "changed": ["p/b/short"]}
    assert s.set_jobs([a])["removed"] == ["p/b/short", "p/c/short"]
    assert sample(m, "llm_vitals_targets") == 1


def test_jitter_stays_on_the_grid_so_the_rate_is_exact() -> None:
    from datetime import UTC, datetime, timedelta

    from apscheduler.triggers.interval import IntervalTrigger

    from daemon.gridtrigger import GridIntervalTrigger

    start = datetime(2026, 1, 1, tzinfo=UTC)

    def mean_interval(trigger: IntervalTrigger, runs: int = 5000) -> float:
        t = trigger.get_next_fire_time(None, start)
        first = t
        for _ in range(runs):
            t = trigger.get_next_fire_time(t, t)
        assert t is not None and first is not None
        return (t - first).total_seconds() / runs

    grid = GridIntervalTrigger(seconds=60, start_date=start, jitter=30, timezone=UTC)
    drift = IntervalTrigger(seconds=60, start_date=start, jitter=30, timezone=UTC)
    assert mean_interval(grid) == pytest.approx(60, rel=0.002)
    assert mean_interval(drift) == pytest.approx(75, rel=0.02)  # apscheduler's own: 60 x (1 + 0.5/2)
    # every run stays within its own slot: [k x 60, k x 60 + 30)
    t = grid.get_next_fire_time(None, start)
    for k in range(200):
        assert t is not None
        offset = (t - start).total_seconds() - 60 * k
        assert 0 <= offset < 30
        t = grid.get_next_fire_time(t, t + timedelta(seconds=1))


async def test_jittered_targets_keep_the_configured_rate(fake_probe: dict[str, float]) -> None:
    m = Metrics()
    got: list[ProbeResult] = []
    s = ProbeScheduler(ClientPool(), m, got.append, BudgetTracker(Budgets(), m), max_concurrency=20)  # type: ignore[arg-type]
    s.set_jobs([Scheduled(target(f"j{i}"), interval=0.25, jitter=0.8) for i in range(8)])
    s.start()
    await asyncio.sleep(5.0)
    s.pause()
    await s.drain(2)
    # 8 targets x 5 s / 0.25 s = 160 due (first runs spread over one interval: -4 each on
    # average). Jitter drifting upward (interval x 1.4) would make it ~114.
    assert 140 <= len(got) <= 165, len(got)


async def test_one_providers_budget_pauses_that_provider_only(fake_probe: dict[str, float]) -> None:
    from daemon.config import ProviderBudget

    m = Metrics()
    got: list[ProbeResult] = []
    budget = BudgetTracker(Budgets(per_provider=ProviderBudget(daily_tokens=50)), m,
                           {"greedy": ProviderBudget(daily_tokens=50), "other": ProviderBudget(daily_tokens=10_000)})
    def consume(r: ProbeResult) -> None:
        got.append(r)
        budget.add(r, None)

    s = ProbeScheduler(ClientPool(), m, consume, budget, max_concurrency=4)
    s.set_jobs([Scheduled(target("a", provider="greedy"), interval=0.2, jitter=0),
                Scheduled(target("b", provider="other"), interval=0.2, jitter=0)])
    s.start()
    await asyncio.sleep(1.6)
    s.pause()
    await s.drain(1)
    greedy = [r for r in got if r.provider == "greedy"]
    other = [r for r in got if r.provider == "other"]
    assert len(greedy) == 2  # 30 tokens each: the second crosses 50
    assert len(other) >= 7
    assert sample(m, "llm_vitals_provider_budget_paused", provider="greedy", budget="tokens") == 1
    assert sample(m, "llm_vitals_budget_paused", budget="tokens") == 0
    assert sample(m, "llm_vitals_probes_skipped_total", provider="greedy", model="a", probe="short",
                  region="local", reason="budget_provider_tokens") >= 1
    # and it survives a restart
    again = BudgetTracker(Budgets(), m, {"greedy": ProviderBudget(daily_tokens=50)})
    again.restore(budget.state())
    assert again.exhausted("greedy") == "provider_tokens" and again.exhausted("other") is None


async def test_library_log_lines_are_json_and_skips_are_ours_alone(fake_probe: dict[str, float],
                                                                    capfd: pytest.CaptureFixture[str]) -> None:
    import json
    import logging

    import structlog

    from daemon import logs

    logs.configure(json=True)
    try:
        m = Metrics()
        fake_probe["slow"] = 0.7
        s = ProbeScheduler(ClientPool(), m, lambda r: None, BudgetTracker(Budgets(), m), max_concurrency=10)  # type: ignore[arg-type]
        s.set_jobs([Scheduled(target("slow"), interval=0.2, jitter=0)])
        s.start()
        await asyncio.sleep(1.0)
        s.pause()
        await s.drain(2)
        logging.getLogger("httpx").warning("a library says %s", "hello")
        err = capfd.readouterr().err
    finally:  # the process-wide logging of the rest of the session stays pytest's
        root = logging.getLogger()
        root.handlers = [h for h in root.handlers if not isinstance(h, logs._StdlibHandler)]
        structlog.reset_defaults()
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]  # every line is JSON
    assert any(e["event"] == "probe_skipped" and e["reason"] == "overlap" for e in lines)
    assert not any("Execution of job" in e["event"] for e in lines)  # apscheduler's own words: gone
    assert any(e["event"] == "a library says hello" and e["level"] == "warning" for e in lines)
