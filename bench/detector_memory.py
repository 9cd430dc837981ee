"""Detector memory and CPU at steady state: one target's five series fed a week and a day
of 1-minute probes with a daily swing (the season fills for 7 days), then memory per target
(tracemalloc) and CPU per probe. The old regression this guards: the seasonal history as
(t, y) tuples was 6.6 MB per target after 8 days, 6.6 GB at 1,000 targets.

    .venv/bin/python bench/detector_memory.py [--days 8] [--max-mb-per-target 3]
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


def probe(t: float, rnd: random.Random) -> ProbeResult:
    swing = 1 + 0.5 * math.sin(2 * math.pi * (t % 86400) / 86400)
    ttft = 0.3 * swing * math.exp(rnd.gauss(0, 0.2))
    return ProbeResult(provider="p", model="m", probe="short", region="r", started_at=datetime.fromtimestamp(t, UTC),
                       outcome=Outcome.OK, ttft=ttft, e2e=ttft + 0.3, itl_p95=0.02, itls=(0.01, 0.012, 0.02),
                       output_tokens=16, tokens_source=TokensSource.USAGE,
                       output_tps=50.0 * math.exp(rnd.gauss(0, 0.1)))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=float, default=8.0)
    ap.add_argument("--max-mb-per-target", type=float, default=3.0)
    args = ap.parse_args()
    rnd = random.Random(1)
    n = int(args.days * 1440)
    results = [probe(1_700_000_000 + i * 60.0, rnd) for i in range(n)]

    def measure(cfg: DetectorConfig) -> tuple[float, float, int]:
        d = Detector(cfg)
        tracemalloc.start()
        c0 = time.process_time()
        for r in results:
            d.observe(r)
        cpu_ms = (time.process_time() - c0) * 1000 / n
        gc.collect()  # what the detector holds, not garbage a collection would free
        mb = tracemalloc.get_traced_memory()[0] / 1e6
        tracemalloc.stop()
        return mb, cpu_ms, len(d.series)

    ref_mb, ref_cpu, _ = measure(DetectorConfig(season=0))
    mb, cpu_ms, series = measure(DetectorConfig())
    ok = mb <= args.max_mb_per_target
    print(f"detector, {args.days:g} days of 1-minute probes, {series} series a target (CPU under tracemalloc):")
    print(f"  without the season (reference): {ref_mb:.2f} MB per target, {ref_cpu:.2f} ms CPU per probe")
    print(f"  defaults (daily + weekly season): {mb:.2f} MB per target ({mb:.1f} GB at 1,000 targets), "
          f"{cpu_ms:.2f} ms CPU per probe; target <= {args.max_mb_per_target:g} MB: {'ok' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
