"""Detection bench: time-compressed synthetic LLM latency scenarios and the NAB subset.

Synthetic probes (seeded): one probe a minute per target; ttft lognormal around a 400 ms
median (sigma 0.2 in log) with a daily cycle of +-10%, plus a heavy tail (2% of probes are
slowed by a Pareto(1.5) factor >= 1.5); itl p50 ~ 20 ms; 12-20 output tokens; 0.3%
errors. Every run starts with 12 h of healthy probes (warm-up) before the event.

Per scenario: share of runs detected, time to detect (probes after onset; 1 = the first
bad probe) and false pages per simulated week (pages on healthy series / before the
onset), for the detector (daemon.detector, default DetectorConfig) and for a static rule
("p95 over the last 15 probes > 1.5x the healthy p95, for 3 probes"; errors: "error rate
over the last 15 probes > 10%, for 3 probes").

NAB: the detector's statistics (daemon.detector_core) on the raw values, both directions,
one page (score 1) per anomaly onset, threshold fixed in advance (1.0), standard profile.

Targets (exit 1 when missed): every step of +50% or more detected within 5 probes (in
>= 95% of runs), no false page in a simulated week of stationary noise, NAB standard
score >= 65.

    .venv/bin/python bench/detection.py [--runs 20] [--seed 1] [--nab-dir DIR]
NAB data: $LLM_CANARY_NAB_DIR, else <repo>/../shared/data/nab.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from daemon.detector import Detector, DetectorConfig  # noqa: E402
from probes.result import Outcome, ProbeResult, TokensSource  # noqa: E402

WARMUP = 720  # probes (12 h at one a minute)
T0 = 1_700_000_000.0
WEEK = 7 * 1440
OVERRIDES: dict[str, object] = {}  # --set key=value (DetectorConfig), for exploring
ONLY: list[str] = []  # --only WORD: scenarios whose name contains WORD
NOISE = {"sigma": 0.2, "cycle": 0.10, "tail": 0.02}  # --sigma --cycle --tail (sensitivity)


# -- synthetic probes -------------------------------------------------------------------
@dataclass
class Event:
    """Multiplies ttft by `ttft_mult[i]` and sets the error probability `err[i]` per probe."""

    name: str
    length: int  # probes after the onset
    ttft_mult: Callable[[np.ndarray], np.ndarray] = lambda i: np.ones(len(i))
    err: Callable[[np.ndarray], np.ndarray] | None = None
    metrics: tuple[str, ...] = ("ttft", "e2e", "itl", "output_tps")
    affected: int = 1  # how many of the targets the event hits (the first ones)
    targets: int = 1
    onset: int = WARMUP
    target_ttd: int | None = None  # probes: a target of the bench


@dataclass
class Series:
    ttft: np.ndarray
    itl: np.ndarray
    tokens: np.ndarray
    error: np.ndarray


def healthy(rng: np.random.Generator, n: int, phase: float) -> Series:
    minute = np.arange(n) + phase
    cycle = NOISE["cycle"] * np.sin(2 * np.pi * minute / 1440.0)
    ttft = 0.4 * np.exp(cycle + rng.normal(0.0, NOISE["sigma"], n))
    tail = rng.random(n) < NOISE["tail"]
    ttft[tail] *= 1.5 * (1 + rng.pareto(1.5, tail.sum()))
    itl = 0.02 * np.exp(0.5 * cycle + rng.normal(0.0, 0.12, n))
    tokens = rng.integers(12, 21, n)
    error = rng.random(n) < 0.003
    return Series(ttft, itl, tokens, error)


def probe(target: int, i: int, ttft: float, itl: float, tokens: int, error: bool) -> ProbeResult:
    started = datetime.fromtimestamp(T0 + 60.0 * i, UTC)
    common = dict(provider="sim", model=f"model-{target}", probe="short", region="bench", started_at=started)
    if error:
        return ProbeResult(outcome=Outcome.HTTP_ERROR, status_code=503, error="503", **common)  # type: ignore[arg-type]
    gen = itl * (tokens - 1)
    return ProbeResult(
        outcome=Outcome.OK, status_code=200, ttft=ttft, ttft_content=ttft, e2e=ttft + gen,
        tpot=gen / (tokens - 1), itl_p50=itl, itl_mean=itl, output_tokens=int(tokens),
        tokens_source=TokensSource.USAGE, output_tps=(tokens - 1) / gen, **common,  # type: ignore[arg-type]
    )


class StaticRule:
    """p95 of ttft over the last 15 ok probes > 1.5x healthy p95, or errors > 10% of 15, for 3."""

    def __init__(self, healthy_p95: float) -> None:
        self.threshold = 1.5 * healthy_p95
        self.ttft: list[float] = []
        self.err: list[int] = []
        self.breach = 0
        self.firing = False

    def step(self, r: ProbeResult) -> bool:
        """Feed one probe; True when the rule starts firing (a page)."""
        self.err = [*self.err[-14:], 0 if r.ok else 1]
        if r.ok and r.ttft is not None:
            self.ttft = [*self.ttft[-14:], r.ttft]
        high = bool(self.ttft) and float(np.percentile(self.ttft, 95)) > self.threshold
        high = high or sum(self.err) / len(self.err) > 0.10
        self.breach = self.breach + 1 if high else 0
        was, self.firing = self.firing, self.breach >= 3
        return self.firing and not was


@dataclass
class RunResult:
    ttd: int | None  # probes after the onset, 1-based; None = missed
    false_pages: int
    healthy_probes: int  # series-probes of healthy time observed (for the weekly rate)
    static_ttd: int | None
    static_false: int


def run_event(ev: Event, seed: int) -> RunResult:
    rng = np.random.default_rng(seed)
    n = ev.onset + ev.length
    det = Detector(DetectorConfig(**OVERRIDES))
    data = [healthy(rng, n, phase=rng.uniform(0, 1440)) for _ in range(ev.targets)]
    idx = np.arange(ev.length)
    for k in range(ev.affected):
        data[k].ttft[ev.onset:] *= ev.ttft_mult(idx)
        if ev.err is not None:
            data[k].error[ev.onset:] = rng.random(ev.length) < ev.err(idx)
    rules = [StaticRule(float(np.percentile(d.ttft[: ev.onset], 95))) for d in data]
    ttd = static_ttd = None
    false_pages = static_false = 0
    active: set[tuple[str, str]] = set()
    for i in range(n):
        for k, d in enumerate(data):
            r = probe(k, i, float(d.ttft[i]), float(d.itl[i]), int(d.tokens[i]), bool(d.error[i]))
            det.observe(r)
            if rules[k].step(r):
                if i >= ev.onset and k < ev.affected:
                    static_ttd = static_ttd or i - ev.onset + 1
                else:
                    static_false += 1
        verdicts = det.evaluate(now=T0 + 60.0 * i)
        for key, v in verdicts.items():
            if v.anomalous and key not in active:
                k = int(key[0].split("/")[1].rsplit("-", 1)[1])
                if i >= ev.onset and k < ev.affected and key[1] in (*ev.metrics, "error"):
                    ttd = ttd or i - ev.onset + 1
                else:
                    false_pages += 1
        active = {key for key, v in verdicts.items() if v.anomalous}
    healthy_probes = ev.onset * ev.targets + ev.length * (ev.targets - ev.affected)
    return RunResult(ttd, false_pages, healthy_probes, static_ttd, static_false)


def scenarios() -> list[Event]:
    step = lambda f: (lambda i: np.full(len(i), f))  # noqa: E731
    lat = ("ttft", "e2e")
    return [
        Event("ttft step +30%", 120, step(1.3), metrics=lat),
        Event("ttft step +50%", 120, step(1.5), metrics=lat, target_ttd=5),
        Event("ttft step +100%", 120, step(2.0), metrics=lat, target_ttd=5),
        Event("ttft step x5", 60, step(5.0), metrics=lat, target_ttd=5),
        Event("creep +100% over 4h", 360, lambda i: 1 + np.minimum(i / 240, 1.0), metrics=lat),
        Event("error burst 2% (3h)", 180, err=lambda i: np.full(len(i), 0.02), metrics=("error",)),
        Event("error burst 10% (1h)", 60, err=lambda i: np.full(len(i), 0.10), metrics=("error",)),
        Event("error burst 50% (30m)", 30, err=lambda i: np.full(len(i), 0.50), metrics=("error",)),
        Event("total outage (30m)", 30, err=lambda i: np.ones(len(i)), metrics=("error",)),
        Event("one model of 4: x2 ttft", 120, step(2.0), metrics=lat, targets=4, target_ttd=5),
    ]


def pct(values: list[int], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


@dataclass
class Row:
    name: str
    runs: list[RunResult] = field(default_factory=list)


def ttd_cells(ttds: list[int | None], runs: int) -> str:
    got = [t for t in ttds if t is not None]
    if not got:
        return f"{'0/' + str(runs):>6} {'-':>6} {'-':>6}"
    return f"{len(got):>3}/{runs:<2} {pct(got, 50):>6.0f} {pct(got, 90):>6.0f}"


def synthetic(runs: int, seed: int) -> bool:
    ok = True
    print(f"synthetic scenarios: {runs} seeded runs each, 1 probe/min/target, onset after {WARMUP} probes")
    print("ttd = probes after the onset (1 = first bad probe) = minutes; false = false pages per simulated week")
    head = f"{'scenario':<26} {'detector: det':>9} {'ttd50':>6} {'ttd90':>6} {'false/wk':>9} | {'static: det':>10} {'ttd50':>6} {'ttd90':>6} {'false/wk':>9}"
    print(head)
    print("-" * len(head))
    for ev in scenarios():
        if ONLY and not any(word in ev.name for word in ONLY):
            continue
        res = [run_event(ev, seed * 1000 + r) for r in range(runs)]
        healthy_probes = sum(r.healthy_probes for r in res)
        fa = sum(r.false_pages for r in res) * WEEK / healthy_probes
        sfa = sum(r.static_false for r in res) * WEEK / healthy_probes
        line = (f"{ev.name:<26} {ttd_cells([r.ttd for r in res], runs):>22} {fa:>9.2f} | "
                f"{ttd_cells([r.static_ttd for r in res], runs):>21} {sfa:>9.2f}")
        if ev.target_ttd is not None:
            within = sum(1 for r in res if r.ttd is not None and r.ttd <= ev.target_ttd)
            hit = within >= 0.95 * runs
            ok &= hit
            line += f"  target ttd<={ev.target_ttd}: {within}/{runs} {'ok' if hit else 'MISSED'}"
        print(line, flush=True)
    return ok


def stationary_week(targets: int, seed: int) -> bool:
    ev = Event("stationary week", 0, targets=targets, affected=0, onset=WEEK)
    t = time.perf_counter()
    res = run_event(ev, seed)
    hit = res.false_pages == 0
    print(f"stationary heavy-tailed week, {targets} targets x 5 series ({WEEK} probes each): "
          f"detector false pages {res.false_pages}, static rule {res.static_false}  "
          f"[{time.perf_counter() - t:.0f}s]  target 0: {'ok' if hit else 'MISSED'}")
    return hit


def run_nab(d: Path, verbose: bool = False) -> float:
    return 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--week-targets", type=int, default=1)
    ap.add_argument("--nab-dir", default=os.environ.get("LLM_CANARY_NAB_DIR", str(REPO.parent / "shared" / "data" / "nab")))
    ap.add_argument("--skip-nab", action="store_true")
    ap.add_argument("--skip-synthetic", action="store_true")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a DetectorConfig field (explore; targets are for the defaults)")
    for name, value in NOISE.items():
        ap.add_argument(f"--{name}", type=float, default=value, help=f"synthetic noise: {name} (default {value})")
    ap.add_argument("--only", action="append", default=[], help="run the scenarios whose name contains this")
    args = ap.parse_args()
    ONLY.extend(args.only)
    NOISE.update({name: getattr(args, name) for name in NOISE})
    for kv in args.set:
        key, _, value = kv.partition("=")
        OVERRIDES[key] = value
    start = time.perf_counter()
    ok = True
    if not args.skip_synthetic:
        ok &= synthetic(args.runs, args.seed)
        ok &= stationary_week(args.week_targets, args.seed)
    if not args.skip_nab:
        score = run_nab(Path(args.nab_dir), verbose=True)
        hit = score >= 65.0
        ok &= hit
        print(f"NAB standard score (threshold 1.0 fixed in advance): {score:.1f}  target >= 65: {'ok' if hit else 'MISSED'}")
    print(f"total {time.perf_counter() - start:.0f}s  {'ALL TARGETS MET' if ok else 'TARGET MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
