"""Soak: the daemon and its bundled simulator run for --duration under a short interval;
RSS, open fds and threads of BOTH processes are sampled every --sample-every seconds, and
the slope of each (least squares over the second half of the run, per hour) must stay
under its threshold. Leaks show as slopes; start-up and window filling as the first half.

    .venv/bin/python bench/soak.py [--duration 3600] [--sample-every 10] [--interval 1s]
                                   [--models 3] [--max-rss-mb-per-hour 16]

Linux only (reads /proc). Exit 0 when every slope is under its threshold and probing kept
going, 1 otherwise, 2 when the daemon would not start. What fills legitimately over the
first hour (the 1h latency windows, 3 days of per-minute alert buckets) grows RSS a little
in a short run: judge the hour, not five minutes.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent

KINDS = [("sim-openai", "openai_compatible", "{simulator}/v1"), ("sim-anthropic", "anthropic", "{simulator}/v1"),
         ("sim-gemini", "gemini", "{simulator}/v1beta"), ("sim-ollama", "ollama", "{simulator}")]


def config(port: int, tmp: Path, interval: str, models: int) -> str:
    providers = "".join(
        f"""  - name: {name}
    kind: {kind}
    base_url: "{url}"
    models: [{", ".join(f"soak-{name.removeprefix('sim-')}-{i}" for i in range(models))}]
""" for name, kind, url in KINDS)
    return f"""region: soak
http: {{listen: "127.0.0.1:{port}"}}
storage: {{path: "{tmp}/state.db", retention: 1d}}
simulator: {{enabled: true}}
defaults: {{interval: {interval}, timeout: 10s, jitter: 10%, probe: short}}
alerts: {{evaluation_interval: 5s}}
providers:
{providers}"""


@dataclass
class Sample:
    t: float  # seconds since the first sample
    rss_mb: float
    fds: int
    threads: int


def proc_sample(pid: int, t: float) -> Sample:
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(re.search(r"^VmRSS:\s+(\d+)", status, re.M).group(1))  # type: ignore[union-attr]
    threads = int(re.search(r"^Threads:\s+(\d+)", status, re.M).group(1))  # type: ignore[union-attr]
    return Sample(t, rss_kb / 1024, len(os.listdir(f"/proc/{pid}/fd")), threads)


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out += [int(c) for c in text]
    return out


def slope_per_hour(ts: list[float], ys: list[float]) -> float:
    """Least-squares slope of y over t (seconds), per hour."""
    n = len(ts)
    if n < 2:
        return 0.0
    mt, my = sum(ts) / n, sum(ys) / n
    var = sum((t - mt) ** 2 for t in ts)
    if var == 0:
        return 0.0
    return sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / var * 3600


def probes_done(url: str) -> float:
    text = httpx.get(url + "/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("llm_vitals_probes_total{"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=3600, help="seconds (default 3600)")
    ap.add_argument("--sample-every", type=float, default=10, help="seconds between samples")
    ap.add_argument("--interval", default="1s", help="probe interval of every target")
    ap.add_argument("--models", type=int, default=3, help="models per provider (4 providers)")
    ap.add_argument("--max-rss-mb-per-hour", type=float, default=16.0)
    ap.add_argument("--max-fds-per-hour", type=float, default=2.0)
    ap.add_argument("--max-threads-per-hour", type=float, default=2.0)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="llm-vitals-soak-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cfg = tmp / "soak.yaml"
    cfg.write_text(config(port, tmp, args.interval, args.models))
    log = open(tmp / "daemon.log", "wb")  # noqa: SIM115
    daemon = subprocess.Popen([sys.executable, "-m", "daemon.cli", "run", "-c", str(cfg)], cwd=REPO,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        if not wait_ready(url, daemon):
            print(f"FAIL: the daemon did not become ready (log: {tmp / 'daemon.log'})")
            return 2
        sims = children(daemon.pid)
        if len(sims) != 1:
            print(f"FAIL: expected one simulator child of the daemon, found {sims}")
            return 2
        pids = {"daemon": daemon.pid, "simulator": sims[0]}
        targets = len(KINDS) * args.models
        print(f"soak: {targets} targets every {args.interval}, {args.duration:g}s, sampling every "
              f"{args.sample_every:g}s; daemon pid {daemon.pid}, simulator pid {sims[0]}; dir {tmp}")
        print(f"{'t_s':>6} {'probes':>7} | {'daemon rss_mb':>13} {'fds':>4} {'thr':>4} | "
              f"{'sim rss_mb':>10} {'fds':>4} {'thr':>4}")
        samples: dict[str, list[Sample]] = {name: [] for name in pids}
        probes: list[tuple[float, float]] = []
        t0 = time.monotonic()
        while True:
            t = time.monotonic() - t0
            if daemon.poll() is not None:
                print(f"FAIL: the daemon exited with {daemon.returncode} at {t:.0f}s")
                return 1
            for name, pid in pids.items():
                samples[name].append(proc_sample(pid, t))
            # the API is used as a scraper and a dashboard would (its paths must not leak either)
            probes.append((t, probes_done(url)))
            httpx.get(url + "/api/v1/status", timeout=10)
            d, s = samples["daemon"][-1], samples["simulator"][-1]
            print(f"{t:6.0f} {probes[-1][1]:7.0f} | {d.rss_mb:13.1f} {d.fds:4d} {d.threads:4d} | "
                  f"{s.rss_mb:10.1f} {s.fds:4d} {s.threads:4d}", flush=True)
            if t >= args.duration:
                break
            time.sleep(max(0.0, min(args.sample_every, args.duration - t)))
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        log.close()

    ok = True
    (ta, pa), (tb, pb) = probes[0], probes[-1]
    rate = (pb - pa) / (tb - ta) if tb > ta else 0.0
    expected = targets / float(args.interval.removesuffix("s"))
    print(f"\nprobes: {pb - pa:.0f} in {tb - ta:.0f}s = {rate:.2f}/s (configured {expected:.2f}/s)")
    if rate < 0.8 * expected:
        print("FAIL: probing fell behind (under 80% of the configured rate)")
        ok = False
    limits = {"rss_mb": args.max_rss_mb_per_hour, "fds": args.max_fds_per_hour, "threads": args.max_threads_per_hour}
    print(f"slopes per hour, least squares over the second half ({len(samples['daemon']) // 2 + 1} samples):")
    for name, ss in samples.items():
        half = ss[len(ss) // 2:]
        ts = [x.t for x in half]
        parts = []
        for field, limit in limits.items():
            ys = [float(getattr(x, field)) for x in half]
            slope = slope_per_hour(ts, ys)
            verdict = "ok" if slope <= limit else "FAIL"
            ok &= slope <= limit
            parts.append(f"{field} {slope:+.2f}/h (limit {limit:g}, {ys[0]:.1f} -> {ys[-1]:.1f}) {verdict}")
        print(f"  {name:9} " + "; ".join(parts))
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
