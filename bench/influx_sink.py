"""InfluxDB sink throughput and replay, against a real InfluxDB 1.x started here.

1. Sustained: points/s through submit() → spool → batched gzip writes.
2. Replay: 100,000 points spooled while the database is down, then replayed once it is
   back; meanwhile a probe-like task keeps submitting and we measure event-loop lag and
   submit() latency, to show probing is not disturbed.

    .venv/bin/python bench/influx_sink.py [--sustained 50000] [--replay 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from percentile import pct  # noqa: E402  (bench/, beside this script)

from core.store import Store  # noqa: E402
from daemon.config import InfluxConfig  # noqa: E402
from daemon.metrics import Metrics  # noqa: E402
from daemon.sinks.influx import InfluxSink  # noqa: E402
from tests.factories import result  # noqa: E402
from tests.servers import InfluxDB1  # noqa: E402


def count(db: InfluxDB1) -> int:
    rows = db.query("SELECT count(ok) FROM probe")
    return int(rows[0]["count"]) if rows else 0


async def wait_count(db: InfluxDB1, n: int, timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if await asyncio.to_thread(count, db) >= n:
            return time.monotonic() - t0
        await asyncio.sleep(0.25)
    raise TimeoutError(f"only {await asyncio.to_thread(count, db)} of {n} points after {timeout}s")


async def run(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="llm-vitals-influx-bench-"))
    db = InfluxDB1(tmp / "influx")
    db.create_db()
    cfg = InfluxConfig(url=db.url, api_version=1, database="llm_vitals", batch_size=5000, flush_interval=0.2,
                       spool_max_points=1_000_000)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    try:
        # 1. sustained
        sink = InfluxSink(cfg, Store(tmp / "a.db"), Metrics(), memory_max=1_000_000)
        await sink.start()
        t0 = time.monotonic()
        for i in range(args.sustained):
            sink.observe(result(0.3, model=f"m{i % 100}", started_at=start + timedelta(microseconds=i * 10)))
            if i % 2000 == 0:
                await asyncio.sleep(0)
        took = await wait_count(db, args.sustained, 300) + 0
        total = time.monotonic() - t0
        await sink.stop(10)
        print(f"sustained: {args.sustained} points in {total:.1f} s = {args.sustained / total:,.0f} points/s "
              f"(batch 5000, gzip, SQLite write-ahead spool; last points visible {took:.1f} s after submit ended)")

        # 2. replay
        db.stop()
        store = Store(tmp / "b.db")
        sink = InfluxSink(cfg, store, Metrics(), memory_max=1_000_000)
        await sink.start()
        base = start + timedelta(days=1)
        for i in range(args.replay):
            sink.observe(result(0.3, model=f"r{i % 100}", started_at=base + timedelta(microseconds=i * 10)))
            if i % 5000 == 0:
                await asyncio.sleep(0)
        while sink.health()["spooled"] < args.replay:
            await asyncio.sleep(0.5)
        print(f"spooled {sink.health()['spooled']} points while InfluxDB was down")
        db.start()
        lags: list[float] = []
        submits: list[float] = []
        stop = asyncio.Event()

        async def probe_like() -> None:
            i = 0
            while not stop.is_set():
                t = time.perf_counter()
                await asyncio.sleep(0.01)
                lags.append(time.perf_counter() - t - 0.01)
                s = time.perf_counter()
                sink.observe(result(0.3, model="live", started_at=base + timedelta(days=1, seconds=i)))
                submits.append(time.perf_counter() - s)
                i += 1

        prober = asyncio.create_task(probe_like())
        t0 = time.monotonic()
        want = args.replay + 1
        replay_time = await wait_count(db, want, 600)
        stop.set()
        await prober
        live = len(submits)
        await sink.stop(30)
        final = await asyncio.to_thread(count, db)
        print(f"replay: {args.replay} spooled points replayed in {replay_time:.1f} s "
              f"({args.replay / replay_time:,.0f} points/s) while {live} live points were submitted")
        print(f"  event-loop lag during replay: p50 {pct(lags, .5) * 1000:.2f} ms, p99 {pct(lags, .99) * 1000:.2f} ms, "
              f"max {max(lags) * 1000:.1f} ms;  submit(): p99 {pct(submits, .99) * 1e6:.0f} µs")
        print(f"  points in InfluxDB: {final} (expected {args.sustained + args.replay + live}: "
              f"{'exact' if final == args.sustained + args.replay + live else 'MISMATCH'})")
        return 0 if final == args.sustained + args.replay + live else 1
    finally:
        db.stop()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sustained", type=int, default=50_000)
    ap.add_argument("--replay", type=int, default=100_000)
    return asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
