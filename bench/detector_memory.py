"""Detector memory and CPU: one target's five series (ttft, e2e, itl, output_tps, error, as
the daemon runs them) fresh (after its first probe: what a just-started daemon holds per
target) and after a week and a day of 1-minute probes with a daily swing (the daily
season full, the weekly one started: the steady state), memory by tracemalloc, per target
and per series, and CPU per probe.

Target (issue 15: the daemon at 1,000 targets in at most 160 MB of RSS): the detector's
share is what the rest of the daemon leaves. bench/capacity.py at 1,000 targets, peak RSS:
128 MB with --no-detector, so the detector may hold 160 - 128 = 32 MB: 32 KB a target
(6.4 KB a series), fresh or week-old (`--max-kb-per-target`). (Same runs, with the
detector: 234 MB when a fresh target was 84 KB here, 156 MB at 27 KB.) The old
regressions this guards: the seasonal history as (t, y) tuples was 6.6 MB per target
after 8 days; the windows as deques of tuples and floats 0.74 MB.

    .venv/bin/python bench/detector_memory.py [--days 8] [--max-kb-per-target 32]
"""

from __future__ import annotations

import argparse
import gc
import math
import random
import sys
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.result import Outcome, ProbeResult, TokensSource
from detector.service import Detector, DetectorConfig

# 1,000 targets in 160 MB of RSS, 128 MB of it the rest of the daemon (see above): KB a target
BUDGET_KB = (160 - 128) * 1000 / 1000


def probe(t: float, rnd: random.Random) -> ProbeResult:
    swing = 1 + 0.5 * math.sin(2 * math.pi * (t % 86400) / 86400)
    ttft = 0.3 * swing * math.exp(rnd.gauss(0, 0.2))
    return ProbeResult(provider="p", model="m", probe="short", region="r", started_at=datetime.fromtimestamp(t, UTC),
                       outcome=Outcome.OK, ttft=ttft, e2e=ttft + 0.3, itl_p95=0.02, itls=(0.01, 0.012, 0.02),
                       itl_p50=0.012 * math.exp(rnd.gauss(0, 0.1)),
                       output_tokens=16, tokens_source=TokensSource.USAGE,
                       output_tps=50.0 * math.exp(rnd.gauss(0, 0.1)))


def measure(cfg: DetectorConfig, results: list[ProbeResult]) -> tuple[float, float, int]:
    """(KB the detector holds for one target, ms of CPU a probe, series)."""
    Detector(cfg).observe(results[0])  # imports and first-call caches outside the count
    gc.collect()
    tracemalloc.start()
    d = Detector(cfg)
    c0 = time.process_time()
    for r in results:
        d.observe(r)
    cpu_ms = (time.process_time() - c0) * 1000 / len(results)
    gc.collect()  # what the detector holds, not garbage a collection would free
    kb = tracemalloc.get_traced_memory()[0] / 1e3
    tracemalloc.stop()
    return kb, cpu_ms, len(d.series)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=float, default=8.0)
    ap.add_argument("--max-kb-per-target", type=float, default=BUDGET_KB)
    args = ap.parse_args()
    rnd = random.Random(1)
    n = int(args.days * 1440)
    results = [probe(1_700_000_000 + i * 60.0, rnd) for i in range(n)]
    limit = args.max_kb_per_target
    ok = True
    print(f"detector memory per target (tracemalloc; CPU under tracemalloc); target <= {limit:g} KB a target "
          f"({limit:g} MB at 1,000 targets)")
    for name, cfg, rows in (
        ("fresh (one probe)", DetectorConfig(), results[:1]),
        (f"{args.days:g} days, without the season (reference)", DetectorConfig(season=0, season_week=0), results),
        (f"{args.days:g} days, defaults (daily + weekly season)", DetectorConfig(), results),
    ):
        kb, cpu_ms, series = measure(cfg, rows)
        scored = "reference" not in name
        good = kb <= limit
        ok &= good or not scored
        verdict = ("ok" if good else "MISSED") if scored else "informational"
        cpu = f", {cpu_ms:.2f} ms CPU a probe" if len(rows) > 1 else ""
        print(f"  {name}: {kb:.1f} KB a target, {kb / series:.1f} KB a series ({series} series), "
              f"{kb:.0f} MB at 1,000 targets{cpu}: {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
