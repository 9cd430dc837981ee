"""History at fleet size: 100 targets x 7 days of stored probes (one a minute by default).

Measures `llm-vitals report` (file size, time, peak RSS), `llm-vitals export --format jsonl`
(time, peak RSS: it streams, so RSS must not grow with the store) and the status page's
history queries (availability at first and at later calls, the all-target sparkline query,
one target's 7 days of probes). Exits 1 when a target is missed:
report < 5 MB, export peak RSS <= 150 MB, availability top-up <= 100 ms, sparklines (after the
first call) <= 0.5 s.

    .venv/bin/python bench/history.py [--targets 100] [--days 7] [--interval 60] [--db PATH]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.result import Outcome, ProbeResult, TokensSource  # noqa: E402
from core.store import Store  # noqa: E402
from daemon import history  # noqa: E402

CONFIG = """
storage: {{path: "{db}", retention: 14d}}
providers:
{providers}
"""


def fill(db: Path, targets: int, days: float, interval: float) -> int:
    store = Store(db)
    now = datetime.now(UTC)
    n_per = int(days * 86400 / interval)
    batch: list[ProbeResult] = []
    total = 0
    itls = tuple(0.02 + (i % 7) * 0.001 for i in range(15))
    for t in range(targets):
        base = 0.1 + (t % 20) * 0.05
        for i in range(n_per):
            at = now - timedelta(seconds=i * interval + (t % 60))
            ok = (i + t) % 97 != 0
            ttft = base + (i % 13) * 0.01
            batch.append(ProbeResult(
                provider=f"prov{t // 10}", model=f"model-{t}", probe="short", region="bench", started_at=at,
                outcome=Outcome.OK if ok else Outcome.HTTP_ERROR, status_code=200 if ok else 503,
                error=None if ok else "HTTP 503: overloaded", connect=0.0, tls=0.0, ttfb=ttft * 0.8,
                ttft=ttft if ok else None, ttft_content=ttft if ok else None, e2e=ttft + 0.35 if ok else None,
                itls=itls if ok else (), output_tokens=16 if ok else None, input_tokens=20,
                tokens_source=TokensSource.USAGE, output_tps=45.0 if ok else None))
            if len(batch) >= 20_000:
                store.add_results(batch)
                total += len(batch)
                batch = []
    store.add_results(batch)
    total += len(batch)
    store.close()
    return total


def run(args: list[str], stdout: int | None = None) -> tuple[float, float, int]:
    """(seconds, peak RSS MB, exit code) of one child process."""
    t0 = time.monotonic()
    p = subprocess.Popen(args, stdout=stdout, cwd=REPO)
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return time.monotonic() - t0, usage.ru_maxrss / 1024, p.returncode


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", type=int, default=100)
    ap.add_argument("--days", type=float, default=7)
    ap.add_argument("--interval", type=float, default=60)
    ap.add_argument("--db", help="reuse (or keep) the store here")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vitals-bench-"))
    db = Path(a.db) if a.db else work / "state.db"
    if not db.exists():
        t0 = time.monotonic()
        n = fill(db, a.targets, a.days, a.interval)
        print(f"store: {n} probes, {db.stat().st_size / 1e6:.0f} MB, filled in {time.monotonic() - t0:.0f} s")
    providers = "\n".join(f"  - {{name: prov{p}, kind: openai_compatible, base_url: 'http://127.0.0.1:9/v1', "
                          f"models: [{', '.join(f'model-{t}' for t in range(p * 10, min(a.targets, p * 10 + 10)))}]}}"
                          for p in range((a.targets + 9) // 10))
    cfg = work / "bench.yaml"
    cfg.write_text(CONFIG.format(db=db, providers=providers))
    py = [sys.executable, "-m", "daemon.cli"]
    misses = []

    out = work / "report.html"
    secs, rss, rc = run([*py, "report", "-c", str(cfg), "--since", f"{a.days}d", "--out", str(out)])
    size = out.stat().st_size / 1e6 if out.exists() else float("inf")
    print(f"report: {size:.2f} MB in {secs:.1f} s, peak RSS {rss:.0f} MB (exit {rc})")
    if rc != 0 or size >= 5:
        misses.append("report size")

    with open(os.devnull, "w") as devnull:
        secs, rss, rc = run([*py, "export", "-c", str(cfg), "--since", f"{a.days}d", "--format", "jsonl"],
                            stdout=devnull.fileno())
    print(f"export jsonl: {secs:.1f} s, peak RSS {rss:.0f} MB (exit {rc})")
    if rc != 0 or rss > 150:
        misses.append("export memory")

    now = time.time()
    avail = history.Availability({"24h": 86400.0, "7d": 7 * 86400.0})
    store = Store(db)
    with store.reading() as conn:
        t0 = time.perf_counter()
        avail(conn, now)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        avail(conn, now + 5)
        topup = time.perf_counter() - t0
        sparks = history.QuantileCache("ttft")
        t0 = time.perf_counter()
        spark = sparks(conn, now - 86400, now, 900)
        spark_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        sparks(conn, now - 86400 + 60, now + 60, 900)
        spark_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        one = history.probes(conn, "prov0/model-0/short", now - 7 * 86400, now)
        one_s = time.perf_counter() - t0
    store.close()
    print(f"availability: first call {first * 1000:.0f} ms, top-up {topup * 1000:.1f} ms")
    print(f"sparklines (ttft p50/p95 per 15 min, 24 h, {len(spark['series'])} targets): first {spark_first:.2f} s, "
          f"then {spark_s:.2f} s")
    print(f"one target, 7 d of probes: {one['count']} probes -> {len(one['probes']['t'])} points in {one_s:.2f} s")
    if topup > 0.1:
        misses.append("availability top-up")
    if spark_s > 0.5:
        misses.append("sparklines")
    if misses:
        print("MISSED: " + ", ".join(misses))
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
