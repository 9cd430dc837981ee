"""Does a hostile provider take the monitor down? The hostile server (tests/hostile.py, its
own process) misbehaves in every way at once while a control target is probed on its
schedule by the real scheduler; then each misbehaviour alone, timed.

Prints per misbehaviour: outcome, how long past its timeout the probe ended, the longest
event-loop turn (wall clock, and this thread's CPU time: the wall clock includes time the
OS gave other processes), RSS growth; and, for the mixed run, control probes made of those
due. Exits 1 when a probe overruns its timeout by over 100 ms, a loop turn takes over
20 ms of CPU, the control target makes under 95% of its probes, or RSS grows over 64 MB.

    .venv/bin/python bench/hostile_provider.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import structlog

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.result import Outcome, ProbeResult  # noqa: E402
from daemon.budget import BudgetTracker  # noqa: E402
from daemon.config import Budgets  # noqa: E402
from daemon.metrics import Metrics  # noqa: E402
from daemon.scheduler import ProbeScheduler, Scheduled  # noqa: E402
from probes.clients import ClientPool  # noqa: E402
from probes.runner import new_client, run_probe  # noqa: E402
from probes.target import ProbeLimits, ProbeSpec, ProbeTarget, ProviderSpec  # noqa: E402

MODES = ("endless", "hugeline", "hugereply", "slowloris", "silence", "shape-0", "liar")
TIMEOUT = 3.0


def target(url: str, mode: str, model: str = "m", limits: ProbeLimits | None = None) -> ProbeTarget:
    return ProbeTarget(ProviderSpec(mode, "openai_compatible", f"{url}/{mode}/v1"), model, ProbeSpec(max_tokens=16),
                       timeout=TIMEOUT, limits=limits or ProbeLimits())


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) / 1024


class LoopWatch:
    def __init__(self) -> None:
        self.wall = self.cpu = 0.0
        self._t = self._c = 0.0
        self._on = False

    def _turn(self) -> None:
        t, c = time.perf_counter(), time.thread_time()
        self.wall, self.cpu = max(self.wall, t - self._t), max(self.cpu, c - self._c)
        self._t, self._c = t, c
        if self._on:
            asyncio.get_running_loop().call_soon(self._turn)

    def __enter__(self) -> LoopWatch:
        self._on, self._t, self._c = True, time.perf_counter(), time.thread_time()
        asyncio.get_running_loop().call_soon(self._turn)
        return self

    def __exit__(self, *exc: object) -> None:
        self._on = False


async def alone(url: str, missed: list[str]) -> None:
    print(f"{'misbehaviour':<24} {'outcome':<14} {'ended':>7} {'past t/o':>9} {'loop max':>9} {'cpu max':>8} "
          f"{'rss +MB':>8}  error")
    cases = [(m, None) for m in MODES] + [("endless", ProbeLimits(max_stream_bytes=1 << 40))]
    async with new_client() as client:
        await run_probe(client, target(url, "ok"))  # first-use costs (imports, caches) out of the way
        for mode, limits in cases:
            rss0 = rss_mb()
            with LoopWatch() as w:
                t0 = time.perf_counter()
                r = await run_probe(client, target(url, mode, limits=limits))
                took = time.perf_counter() - t0
            grew = rss_mb() - rss0
            past = took - TIMEOUT
            name = mode + (" (no byte limit)" if limits else "")
            print(f"{name:<24} {r.outcome.value:<14} {took:>6.3f}s {past * 1000:>7.1f}ms {w.wall * 1000:>7.1f}ms "
                  f"{w.cpu * 1000:>6.1f}ms {grew:>8.1f}  {(r.error or '')[:60]}")
            if past > 0.1:
                missed.append(f"{name}: ended {past:.3f}s past its timeout")
            if w.cpu > 0.02:
                missed.append(f"{name}: a loop turn took {w.cpu * 1000:.1f} ms of CPU")
            if grew > 64:
                missed.append(f"{name}: RSS grew {grew:.0f} MB")


async def together(url: str, seconds: float, missed: list[str]) -> None:
    m = Metrics()
    counts: dict[tuple[str, str], int] = {}  # (model, outcome): results are not kept (RSS is measured)

    def count(r: ProbeResult) -> None:
        key = (r.model, r.outcome.value)
        counts[key] = counts.get(key, 0) + 1
        m.observe(r)

    s = ProbeScheduler(ClientPool(), m, count, BudgetTracker(Budgets(), m), max_concurrency=16)
    interval = 0.25
    jobs = [Scheduled(target(url, "ok", "control"), interval=interval, jitter=0)]
    jobs += [Scheduled(target(url, mode, "hostile"), interval=1.0, jitter=0.2) for mode in MODES]
    s.set_jobs(jobs)
    rss0 = rss_mb()
    samples: list[float] = []

    async def sample() -> None:
        while True:
            await asyncio.sleep(1.0)
            samples.append(rss_mb())

    s.start()
    sampler = asyncio.create_task(sample())
    with LoopWatch() as w:
        t0 = time.perf_counter()
        await asyncio.sleep(seconds)
        s.pause()
        elapsed = time.perf_counter() - t0
        await s.drain(TIMEOUT + 1)
    sampler.cancel()
    s.shutdown()
    grew = rss_mb() - rss0
    half = samples[len(samples) // 2:] or [rss0]
    # flat: the second half of the run grows no further than the first settled at
    flat = f"RSS {rss0:.0f} MB at start, {samples[len(samples) // 2 - 1] if len(samples) > 1 else rss0:.0f} MB " \
           f"halfway, {max(half):.0f} MB max in the second half"
    control = sum(n for (model, _), n in counts.items() if model == "control")
    ok = counts.get(("control", Outcome.OK.value), 0)
    due = int(elapsed / interval) + 1
    hostile = {outcome: n for (model, outcome), n in counts.items() if model == "hostile"}
    print(f"\nall {len(MODES)} misbehaviours at once for {elapsed:.1f}s: control target {ok} ok of {due} due "
          f"({control} made); hostile probes {hostile}; loop max turn {w.wall * 1000:.1f} ms "
          f"(cpu {w.cpu * 1000:.1f} ms); {flat}")
    if ok < 0.95 * due:
        missed.append(f"control target: {ok} of {due} probes")
    if w.cpu > 0.02:
        missed.append(f"mixed run: a loop turn took {w.cpu * 1000:.1f} ms of CPU")
    if grew > 64 or (len(samples) > 3 and max(half) - samples[len(samples) // 2 - 1] > 16):
        missed.append(f"mixed run: RSS grew {grew:.0f} MB ({flat})")


async def main_async(args: argparse.Namespace) -> int:
    srv = subprocess.Popen([sys.executable, "-m", "tests.hostile"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, cwd=REPO)
    assert srv.stdout is not None and srv.stdin is not None
    url = f"http://127.0.0.1:{json.loads(srv.stdout.readline())['port']}"
    missed: list[str] = []
    try:
        await alone(url, missed)
        await together(url, args.seconds, missed)
    finally:
        srv.stdin.close()
        srv.wait(10)
    if missed:
        print("MISSED: " + "; ".join(missed))
        return 1
    return 0


def main() -> int:
    # the skipped-probe warnings of the hostile targets are expected: figures only
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0)
    return asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
