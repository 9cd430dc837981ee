"""`llm-vitals sweep` against the simulator: a server that queues beyond N streams, its
knee, ttft against the server's own write times, 429 back-off and the guard rails."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.result import Outcome, ProbeResult
from daemon.config import load_settings
from daemon.sweep import Plan, estimate, report, run_sweep
from probes.simulator import Scenario, Simulator
from probes.simulator.scenario import Fault, Script
from probes.timing import quantile

N = 4  # the simulated server's concurrent streams
TTFT, ITL, TOKENS = 0.1, 0.01, 6

CONFIG = """
probes: [{name: short, prompt: "Reply with exactly one word: pong", max_tokens: 16, expect: {contains: pong}}]
providers:
  - {name: sim, kind: openai, base_url: "URL/v1", models: [m]}
"""


def settings_for(tmp_path: Path, url: str, extra: str = "") -> Path:
    f = tmp_path / "c.yaml"
    f.write_text(CONFIG.replace("URL", url) + extra)
    return f


def server_ttft(sim: Simulator, r: ProbeResult) -> float:
    """ttft by the server's clock: when it wrote the first token, from our request's start."""
    first = next(rec for rec in sim.truth.records if rec["request_id"] == r.request_id and rec["index"] == 0)
    return (first["t_ns"] - r.started_at.timestamp() * 1e9) / 1e9


async def test_sweep_finds_the_knee_of_a_server_that_queues_beyond_n(tmp_path: Path) -> None:
    scenario = Scenario(defaults=Script(ttft=TTFT, itl=ITL, jitter=0, tokens=TOKENS), max_streams=N)
    async with Simulator(scenario) as sim:
        settings = load_settings(settings_for(tmp_path, sim.url))
        plan = Plan(target=settings.targets()[0], concurrency=(1, 2, 4, 8), requests=16)
        levels = await run_sweep(settings, plan)
        rep = report(plan, levels, estimate(settings, plan))
        for level, summary in zip(levels, rep["levels"], strict=True):
            assert summary["requests"] == 16 and summary["ok"] == 16, summary
            truth = quantile([server_ttft(sim, r) for r in level.results], 0.5)
            assert truth is not None and summary["ttft_p50"] == pytest.approx(truth, rel=0.10), (summary, truth)
    by_c = {s["concurrency"]: s for s in rep["levels"]}
    assert by_c[1]["ttft_p50"] == pytest.approx(TTFT, abs=0.03)
    assert by_c[8]["ttft_p50"] > 1.5 * by_c[1]["ttft_p50"]  # queued behind the N streams served
    assert by_c[4]["aggregate_output_tps"] > 1.5 * by_c[2]["aggregate_output_tps"]
    assert rep["saturation"] is not None and rep["saturation"]["concurrency"] in (N, 2 * N), rep["saturation"]


async def test_closed_loop_keeps_exactly_c_streams_in_flight(tmp_path: Path) -> None:
    async with Simulator(Scenario(defaults=Script(ttft=0.05, itl=0.01, jitter=0, tokens=4))) as sim:
        settings = load_settings(settings_for(tmp_path, sim.url))
        plan = Plan(target=settings.targets()[0], concurrency=(3,), requests=9)
        (level,) = await run_sweep(settings, plan)
    spans = sorted((r.started_at.timestamp(), r.started_at.timestamp() + (r.e2e or 0)) for r in level.results)
    # at each start, the streams then running (itself included) never exceed c, and a
    # start past the first wave follows an end (a finished stream starts the next)
    for start, _ in spans:
        running = sum(1 for s, e in spans if s <= start < e)
        assert running <= 3
    assert sum(1 for s, _ in spans if s - spans[0][0] < 0.02) == 3  # the first wave: all c at once


async def test_429_backs_off_for_retry_after_and_is_reported(tmp_path: Path) -> None:
    scenario = Scenario(defaults=Script(ttft=0.03, itl=0.005, jitter=0, tokens=3,
                                        faults=[Fault(kind="http_429", probability=0.3, retry_after=0.3)]))
    async with Simulator(scenario, seed=7) as sim:
        settings = load_settings(settings_for(tmp_path, sim.url))
        plan = Plan(target=settings.targets()[0], concurrency=(2,), requests=12)
        (level,) = await run_sweep(settings, plan)
    s = level.summary()
    limited = [r for r in level.results if r.outcome is Outcome.RATE_LIMITED]
    assert limited and s["errors"]["rate_limited"] == len(limited)
    assert s["retry_after_max"] == 0.3 and s["backoff_seconds"] >= 0.3
    for r in limited:  # nothing started while a Retry-After held (never hammering)
        end = r.started_at.timestamp() + (r.e2e or 0)
        assert not [o for o in level.results if end < o.started_at.timestamp() < end + 0.28]


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "daemon.cli", "sweep", *args], capture_output=True, text=True,
                          timeout=120, input=stdin if stdin is not None else "")


async def test_cli_json_shape_and_guard_rails(tmp_path: Path) -> None:
    async with Simulator(Scenario(defaults=Script(ttft=0.02, itl=0.005, jitter=0, tokens=4))) as sim:
        f = settings_for(tmp_path, sim.url)
        common = ["-c", str(f), "--target", "sim/m", "--concurrency", "1,2", "--requests", "3"]
        p = await asyncio.to_thread(run_cli, *common, "--prompt-tokens", "50,400", "--format", "json", "--yes")
        assert p.returncode == 0, p.stderr
        rep = json.loads(p.stdout)
        assert "sweep sim/m/short: 12 requests" in p.stderr  # the spend, said before it starts
        # not on a terminal and no --yes: nobody can confirm the spend
        no = await asyncio.to_thread(run_cli, *common)
        # the budget would be passed
        tight = settings_for(tmp_path, sim.url, "budgets: {daily_tokens: 100}\n")
        over = await asyncio.to_thread(run_cli, "-c", str(tight), "--target", "sim/m", "--requests", "3", "--yes")
        big = [r for r in sim.requests if len(json.dumps(r["body"])) > 1500]
    assert list(rep) == ["target", "levels", "saturation", "estimate"] and rep["target"] == "sim/m/short"
    assert [(s["concurrency"], s["prompt_tokens"]) for s in rep["levels"]] == [(1, 50), (2, 50), (1, 400), (2, 400)]
    assert list(rep["levels"][0])[:10] == ["concurrency", "prompt_tokens", "requests", "ok", "ttft_p50", "ttft_p95",
                                           "e2e_p50", "output_tps_p50", "aggregate_output_tps", "errors"]
    assert all(s["requests"] == 3 and s["ok"] == 3 for s in rep["levels"])
    assert len(big) == 6  # the 400-token prompts were sent padded
    assert no.returncode == 2 and "add --yes" in no.stderr
    assert over.returncode == 2 and "past the 100 tokens the daily budgets allow" in over.stderr


def test_budget_counts_what_the_daemon_spent_today(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from core.store import Store
    from daemon.sweep import Allowance

    db = tmp_path / "state.db"
    f = settings_for(tmp_path, "http://127.0.0.1:9", f"storage: {{path: {db}}}\nbudgets: {{daily_tokens: 10000}}\n")
    settings = load_settings(f)
    plan = Plan(target=settings.targets()[0], concurrency=(1, 2), requests=10)
    est = estimate(settings, plan)
    assert est.tokens is not None and est.tokens < 10000
    assert Allowance.of(settings, "sim").refuses(est) is None  # no store yet: the budget alone
    store = Store(db)
    store.put_state("budget", {"day": datetime.now(UTC).strftime("%Y-%m-%d"), "tokens": 9500, "cost": 0.0,
                               "providers": {"sim": [9500, 0.0]}})
    store.close()
    why = Allowance.of(settings, "sim").refuses(est)
    assert why is not None and "less 9500 tokens the daemon spent today" in why


async def test_duration_level_starts_nothing_after_its_time(tmp_path: Path) -> None:
    async with Simulator(Scenario(defaults=Script(ttft=0.05, itl=0.01, jitter=0, tokens=4))) as sim:
        settings = load_settings(settings_for(tmp_path, sim.url))
        plan = Plan(target=settings.targets()[0], concurrency=(2,), duration=0.6)
        (level,) = await run_sweep(settings, plan)
    starts = sorted(r.started_at.timestamp() for r in level.results)
    assert len(starts) >= 8 and all(r.ok for r in level.results)  # ~0.09 s a stream, 2 at a time
    assert starts[-1] - starts[0] < 0.6
    assert level.summary()["requests"] == len(starts)
