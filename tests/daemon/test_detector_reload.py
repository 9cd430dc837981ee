"""Changing `detector:` on a running daemon: the new detector starts from every target's
state, and neither saving nor loading it freezes the event loop."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from daemon import status
from daemon.config import load_settings
from daemon.process import Daemon
from tests.conftest import free_port
from tests.detector.factories import Feed

CONFIG = """
http: {{listen: "127.0.0.1:{port}"}}
storage: {{path: "{tmp}/state.db"}}
defaults: {{interval: 10m, timeout: 10s, jitter: 0}}
probes: [{{name: short, prompt: "Reply with exactly one word: pong", max_tokens: 16, expect: {{contains: pong}}}}]
providers:
  - {{name: p, kind: openai, base_url: "http://127.0.0.1:9/v1", models: [{models}]}}
detector: {{enabled: {enabled}, min_effect: {effect}}}
"""
MODEL_NAMES = tuple(f"m{i}" for i in range(40))
MODELS = ", ".join(MODEL_NAMES)


async def _start(f: Path) -> tuple[Daemon, asyncio.Task[None]]:
    d = Daemon(load_settings(f), str(f), str(f))
    task = asyncio.create_task(d.run())
    for _ in range(200):  # started, and every target probed once (the next probes are 10 minutes away)
        if d.scheduler is not None and status.readiness(d)[0]:
            break
        await asyncio.sleep(0.05)
    assert status.readiness(d)[0]
    await asyncio.sleep(0.2)  # the first probes' results on their way: a quiet daemon to reload
    return d, task


@asynccontextmanager
async def _fed_daemon(tmp_path: Path, seed: int) -> AsyncIterator[tuple[Daemon, Callable[[str, str], None]]]:
    """A running daemon whose detector holds 40 targets with baselines, none of them saved,
    and how to rewrite its config (enabled, min_effect) before a reload."""
    port = free_port()
    f = tmp_path / "c.yaml"

    def configure(enabled: str, effect: str) -> None:
        f.write_text(CONFIG.format(port=port, tmp=tmp_path, enabled=enabled, effect=effect, models=MODELS))

    configure("true", "30%")
    d, task = await _start(f)
    try:
        assert d.detector is not None
        Feed(seed=seed).run(d.detector, 120, models=MODEL_NAMES)
        yield d, configure
    finally:
        d._stop.set()
        await asyncio.wait_for(task, 30)


async def _timed_reload(d: Daemon) -> tuple[float, float]:
    """(the reload's wall time, the longest loop turn meanwhile)."""
    worst = 0.0
    ticking = True

    async def tick() -> None:  # the loop's responsiveness while the reload runs
        nonlocal worst
        while ticking:
            t = time.perf_counter()
            await asyncio.sleep(0)
            worst = max(worst, time.perf_counter() - t)

    # the collector's pauses are not the reload's (late in a full test run, one full
    # collection of the test process' heap took 150 ms)
    gc.collect()
    gc.disable()
    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)  # ticking before the reload starts: a reload that never yields shows
    try:
        t0 = time.perf_counter()
        await d.reload()
        took = time.perf_counter() - t0
    finally:
        gc.enable()
    ticking = False
    await ticker
    return took, worst


async def test_a_detector_change_carries_every_target_over_without_stalling_the_loop(tmp_path: Path) -> None:
    async with _fed_daemon(tmp_path, seed=5) as (d, configure):
        old = d.detector
        assert old is not None and len(old._dirty) >= 40
        configure("true", "40%")
        took, worst = await _timed_reload(d)
        new = d.detector
        assert new is not None and new is not old and new.cfg.min_effect == 0.4
        assert {t for t, _ in new.series} >= {f"p/{m}/short" for m in MODEL_NAMES}
        key = ("p/m7/short", "ttft")
        assert len(new.series[key].base) == len(old.series[key].base) > 0  # baselines, not warm-ups
        # the save took many loop turns, none of them the whole save
        assert worst < took / 4, (worst, took)


async def test_switching_the_detector_off_and_on_keeps_every_baseline_without_stalling_the_loop(tmp_path: Path) -> None:
    async with _fed_daemon(tmp_path, seed=6) as (d, configure):
        old = d.detector
        assert old is not None
        key = ("p/m7/short", "ttft")
        # a rolling save just now, then more probes: switching off still saves those
        # (the rolling save would wait 5 minutes to write these targets again)
        await old.save_async()
        Feed(seed=6).run(old, 5, models=MODEL_NAMES)
        n_base = len(old.series[key].base)
        configure("false", "30%")
        await d.reload()  # off: every target's state is saved for when it is back on
        assert d.detector is None
        configure("true", "30%")
        took, worst = await _timed_reload(d)
        new = d.detector
        assert new is not None and new is not old
        assert {t for t, _ in new.series} >= {f"p/{m}/short" for m in MODEL_NAMES}
        assert len(new.series[key].base) == n_base > 0  # baselines, not warm-ups
        # the load took many loop turns, none of them the whole load
        assert worst < took / 4, (worst, took)
