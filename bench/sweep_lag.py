"""Does a scheduled sweep starve the regular probes? Their schedule lag (scheduled start to
real start, llm_vitals_scheduler_lag_seconds) and the event loop's lag, with and without a
sweep running in the same daemon.

The daemon runs in-process with `--targets` probes at `--interval`; two simulators run in
their own processes: one answers the probes, the other is the swept server (it serves
`--max-streams` streams at once and queues the rest, like a vLLM batch limit). Phases:
a baseline, then `--rounds` times a sweep (levels `--levels`, `--level-seconds` each) and
a baseline; the baselines say what noise is. `--in-loop` runs the same sweep on the daemon's own event
loop instead of its worker process (the reference the worker is measured against). Exits 1 when the probes' lag p50 during the
sweeps passes the baselines' by more than `--margin-ms`, or when more probes were skipped
during the sweeps than in the baselines.

    nice .venv/bin/python bench/sweep_lag.py [--targets 40] [--interval 1] [--levels 8,16,32,64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from percentile import pct  # noqa: E402  (bench/, beside this script)

from daemon.config import Settings  # noqa: E402
from daemon.process import Daemon  # noqa: E402


def start_simulator(scenario: Path, nice: int = 0) -> tuple[subprocess.Popen[bytes], str]:
    import os

    proc = subprocess.Popen(
        [sys.executable, "-m", "probes.simulator", "--port", "0", "--scenario", str(scenario), "--exit-with-parent"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO, preexec_fn=(lambda: os.nice(nice)) if nice else None,
    )
    assert proc.stdout is not None
    return proc, "http://" + json.loads(proc.stdout.readline())["listening"]


@dataclass
class Phase:
    name: str
    lags: list[float]
    loop_max: float
    probes: int
    skipped: float

    def line(self) -> str:
        ms = [pct(self.lags, q) * 1000 for q in (0.5, 0.95, 0.99)]
        return (f"{self.name:<10} probes {self.probes:>4}  lag p50 {ms[0]:6.1f} ms  p95 {ms[1]:6.1f} ms  "
                f"p99 {ms[2]:6.1f} ms  max {max(self.lags, default=float('nan')) * 1000:6.1f} ms  "
                f"loop lag max {self.loop_max * 1000:6.1f} ms  skipped {self.skipped:.0f}")


async def measure(targets: int = 40, interval: float = 1.0, levels: tuple[int, ...] = (8, 16, 32, 64),
                  level_seconds: float = 4.0, baseline: float = 10.0, max_streams: int = 16,
                  verbose: bool = True, rounds: int = 2, in_loop: bool = False, swept_nice: int = 0) -> tuple[list[Phase], list[Phase], dict[str, object]]:
    tmp = Path(tempfile.mkdtemp(prefix="llm-vitals-sweep-lag-"))
    (tmp / "probes.yaml").write_text("defaults: {ttft: 60ms, itl: 10ms, jitter: 10%, tokens: 16}\n")
    (tmp / "swept.yaml").write_text(f"defaults: {{ttft: 50ms, itl: 5ms, jitter: 10%, tokens: 64}}\n"
                                    f"max_streams: {max_streams}\n")
    p_sim, p_url = start_simulator(tmp / "probes.yaml")
    # the swept server stands for another machine: niced (`--swept-nice`), its CPU is not the daemon's
    s_sim, s_url = start_simulator(tmp / "swept.yaml", swept_nice)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(
        http={"listen": f"127.0.0.1:{port}"},
        storage={"path": str(tmp / "state.db"), "retention": "1d"},
        defaults={"interval": interval, "timeout": "10s", "jitter": "10%", "probe": "short"},
        providers=[
            {"name": "fleet", "kind": "openai_compatible", "base_url": f"{p_url}/v1",
             "models": [f"m{i}" for i in range(targets)]},
            {"name": "selfhosted", "kind": "openai_compatible", "base_url": f"{s_url}/v1",
             "models": [{"name": "llm", "interval": "1h"}]},
        ],
        sweeps=[{"name": "capacity", "target": "selfhosted/llm", "schedule": "0 3 * * *",
                 "concurrency": list(levels), "duration": level_seconds}],
        alerts={"enabled": False},
    )
    daemon = Daemon(settings, None, "bench")
    if in_loop:  # the reference: the sweep's streams on the daemon's own event loop
        from daemon.budget import probe_cost
        from daemon.sweep import Allowance, run_sweep
        from daemon.sweep_worker import plan_of

        async def on_the_loop(job: dict, levels: list, settings: Settings) -> int:  # type: ignore[type-arg]
            a = job["allowance"]
            await run_sweep(settings, plan_of(settings, job["sweep"], None), levels=levels,
                            allowance=Allowance(a["tokens"], a["cost_usd"], a["where"]),
                            on_result=lambda r: daemon.budget.add(r, probe_cost(settings, r)))
            return 0

        daemon.sweeps._in_child = on_the_loop  # type: ignore[method-assign]
    task = asyncio.create_task(daemon.run())
    worst = [0.0]
    stalls: list[tuple[float, float]] = []  # (when, how long) of every loop stall over 100 ms

    async def ticker() -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            late = time.perf_counter() - t - 0.005
            worst[0] = max(worst[0], late)
            if late > 0.1:
                stalls.append((time.perf_counter(), late))

    tick = asyncio.create_task(ticker())

    def skipped() -> float:
        # straight from the family's rows: get_sample_value collects the whole registry per call
        # (40 calls stalled the loop ~400 ms at every phase start)
        rows = daemon.metrics.skipped._series
        return sum(row[0] for key, row in list(rows.items()) if key[0] == "fleet" and key[4] in ("overlap", "missed"))

    async def phase(name: str, seconds: float | None) -> Phase:
        assert daemon.scheduler is not None
        daemon.scheduler.lag_samples.clear()
        worst[0] = 0.0
        s0 = skipped()
        t0 = time.perf_counter()
        if seconds is None:  # the sweep: until it has finished
            assert daemon.sweeps.request("capacity") == "queued"
            while daemon.sweeps._queue:
                await asyncio.sleep(0.1)
        else:
            await asyncio.sleep(seconds)
        lags = list(daemon.scheduler.lag_samples)
        p = Phase(name, lags, worst[0], len(lags), skipped() - s0)
        if verbose:
            mine = [d for w, d in stalls if w >= t0]
            print(p.line() + f"  loop stalls >100 ms: {len(mine)}", flush=True)
        return p

    try:
        while daemon.scheduler is None or len(daemon.scheduler.completed) < targets:
            await asyncio.sleep(0.2)
        await asyncio.sleep(interval)  # every connection open
        quiet, busy = [await phase("baseline", baseline)], []
        for _ in range(rounds):
            busy.append(await phase("sweep", None))
            quiet.append(await phase("baseline", baseline))
        with daemon.store.reading() as conn:
            from daemon.sweep_store import runs

            last = runs(conn, 0, time.time() + 1, "capacity")[0]
        info = {"outcome": last.outcome, "saturation": last.report["saturation"],
                "streams": sum(lv["requests"] for lv in last.report["levels"]),
                "levels": [(lv["concurrency"], lv["ttft_p50"], lv["aggregate_output_tps"])
                           for lv in last.report["levels"]]}
    finally:
        tick.cancel()
        daemon._stop.set()
        await asyncio.wait_for(task, 30)
        for proc in (p_sim, s_sim):
            proc.kill()  # the probes' keep-alive connections would hold a graceful stop
            proc.wait(10)
    return quiet, busy, info


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", type=int, default=40)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--levels", default="8,16,32,64")
    ap.add_argument("--level-seconds", type=float, default=4.0)
    ap.add_argument("--baseline", type=float, default=10.0)
    ap.add_argument("--max-streams", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2, help="sweeps, each followed by a baseline")
    ap.add_argument("--margin-ms", type=float, default=5.0)
    ap.add_argument("--swept-nice", type=int, default=0,
                    help="run the swept simulator at this niceness (it stands for another machine)")
    ap.add_argument("--in-loop", action="store_true",
                    help="the reference: run the sweep on the daemon's event loop instead of its worker process")
    args = ap.parse_args()
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    quiet, busy, info = asyncio.run(measure(
        args.targets, args.interval, tuple(int(x) for x in args.levels.split(",")), args.level_seconds,
        args.baseline, args.max_streams, rounds=args.rounds, in_loop=args.in_loop,
        swept_nice=args.swept_nice))
    print(f"last sweep: {info['outcome']}, {info['streams']} streams, saturation {info['saturation']}")
    for c, ttft, agg in info["levels"]:  # type: ignore[attr-defined]
        print(f"  c={c:<3} ttft p50 {ttft * 1000:6.1f} ms  aggregate {agg:7.1f} tokens/s")
    # p50: what most probes see; the tails on a shared machine are other people's CPU (the
    # baselines between the sweeps say how much)
    q_all = [lag for p in quiet for lag in p.lags]
    b_all = [lag for p in busy for lag in p.lags]
    for q in (0.5, 0.95, 0.99):
        print(f"probe lag p{q * 100:g}: {pct(q_all, q) * 1000:6.1f} ms without a sweep, "
              f"{pct(b_all, q) * 1000:6.1f} ms with one (baselines ranged "
              f"{min(pct(p.lags, q) for p in quiet) * 1000:.1f}..{max(pct(p.lags, q) for p in quiet) * 1000:.1f} ms)")
    worse = pct(b_all, 0.5) - pct(q_all, 0.5)
    skipped = sum(p.skipped for p in busy) - sum(p.skipped for p in quiet)
    print(f"p50 difference {worse * 1000:+.1f} ms (margin {args.margin_ms:g} ms); probes skipped during sweeps "
          f"{sum(p.skipped for p in busy):.0f}, in baselines {sum(p.skipped for p in quiet):.0f}")
    return 0 if worse * 1000 <= args.margin_ms and skipped <= 0 else 1

if __name__ == "__main__":
    sys.exit(main())
