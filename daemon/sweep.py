"""`llm-vitals sweep`: a capacity sweep of one target, concurrency x prompt size.

Each level keeps exactly `c` streams in flight (closed loop: a finished stream starts the
next) until its requests are done or its duration is up; levels run one after the other.
Every stream is an ordinary probe (run_probe), so its numbers are `probe`'s numbers.

Guard rails: the spend is estimated before anything is sent and a sweep that would pass
a configured budget is refused; while it runs, what it actually spent is held to the
same budgets; a 429 pauses every stream for its Retry-After (or a growing backoff) and
the pause is reported.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from core.result import Outcome, ProbeResult
from daemon.config import Settings
from probes.runner import new_client, run_probe
from probes.target import ProbeTarget
from probes.timing import quantile

DEFAULT_CONCURRENCY = (1, 2, 4, 8, 16, 32)
MIN_REQUESTS = 10  # per level when neither --requests nor --duration is given: 4 x c, at least this
# A 429 without Retry-After: back off 1 s, 2 s, 4 s... up to this.
MAX_BACKOFF = 30.0
MAX_RETRY_AFTER = 300.0  # a longer Retry-After is honoured only this far (then the pause repeats)
# The saturation rule (issue contract): ttft p50 this many times the single-stream p50,
TTFT_FACTOR = 1.5
# or aggregate tokens/s growing by less than this over the previous level.
MIN_GROWTH = 0.10
CHARS_PER_TOKEN = 4  # the usual estimate for English text
_FILLER = ("data", "probe", "token", "latency", "stream", "model", "queue", "sweep")

Progress = Callable[[str], None]


class SweepError(ValueError):
    """The sweep cannot run as asked (usage, target, budget): the message says why."""


@dataclass(frozen=True)
class Plan:
    target: ProbeTarget
    concurrency: tuple[int, ...] = DEFAULT_CONCURRENCY
    prompt_tokens: tuple[int | None, ...] = (None,)  # None: the probe's own prompt
    requests: int | None = None  # per level
    duration: float | None = None  # per level, seconds

    def requests_for(self, c: int) -> int | None:
        if self.duration is not None and self.requests is None:
            return None
        return self.requests if self.requests is not None else max(MIN_REQUESTS, 4 * c)


@dataclass(frozen=True)
class Estimate:
    requests: int | None  # None: a --duration sweep (bounded by the budgets while it runs)
    tokens_per_request: int
    tokens: int | None
    cost_usd: float | None  # None: no price configured

    def describe(self) -> str:
        if self.requests is None:
            return (f"up to {self.tokens_per_request} tokens per request, for as many requests as the "
                    "durations allow (held to the configured budgets while it runs)")
        cost = "" if self.cost_usd is None else f", about ${self.cost_usd:.4f}"
        return f"{self.requests} requests, at most about {self.tokens} tokens{cost}"


@dataclass
class Level:
    concurrency: int
    prompt_tokens: int | None
    results: list[ProbeResult] = field(default_factory=list)
    wall: float = 0.0  # seconds from the level's start to its last stream's end
    backoff: float = 0.0  # seconds every stream was held back by 429s
    retry_after_max: float | None = None
    stopped: str | None = None  # "budget" when the budgets ended the level early

    def summary(self) -> dict[str, Any]:
        ok = [r for r in self.results if r.ok]
        ttfts = [r.ttft for r in ok if r.ttft is not None]
        e2es = [r.e2e for r in ok if r.e2e is not None]
        tps = [r.output_tps for r in ok if r.output_tps is not None]
        out_tokens = sum(r.output_tokens or 0 for r in ok)
        errors = Counter(r.outcome.value for r in self.results if not r.ok)
        return {
            "concurrency": self.concurrency,
            "prompt_tokens": self.prompt_tokens,
            "requests": len(self.results),
            "ok": len(ok),
            "ttft_p50": quantile(ttfts, 0.50),
            "ttft_p95": quantile(ttfts, 0.95),
            "e2e_p50": quantile(e2es, 0.50),
            "output_tps_p50": quantile(tps, 0.50),
            "aggregate_output_tps": out_tokens / self.wall if self.wall > 0 else None,
            "errors": dict(sorted(errors.items())),
            # additions to the shape, at the end
            "backoff_seconds": round(self.backoff, 3),
            "retry_after_max": self.retry_after_max,
            "stopped": self.stopped,
        }


def padded(target: ProbeTarget, tokens: int | None) -> ProbeTarget:
    """The target with its prompt grown to about `tokens` tokens of filler (before the
    probe's own prompt, so the question stays last and the reply stays short)."""
    if tokens is None:
        return target
    words = max(0, tokens - len(target.probe.prompt) // CHARS_PER_TOKEN)
    filler = " ".join(_FILLER[i % len(_FILLER)] for i in range(words))
    prompt = f"Ignore this filler text: {filler}\n\n{target.probe.prompt}" if words else target.probe.prompt
    # the nonce stays on: a cached prompt would flatter ttft at every size
    return dataclasses.replace(target, probe=dataclasses.replace(target.probe, prompt=prompt))


def request_tokens(target: ProbeTarget) -> tuple[int, int]:
    """(input, output) tokens one request of `target` spends at most, by estimate."""
    p = target.probe
    inp = math.ceil(len(p.prompt) / CHARS_PER_TOKEN) + 16  # nonce, role markup
    return inp, p.max_tokens + ((p.reasoning_budget or 0) if p.reasoning else 0)


def estimate(settings: Settings, plan: Plan) -> Estimate:
    """What the sweep will spend at most: every request's prompt, and its max_tokens."""
    per_size = [request_tokens(padded(plan.target, size)) for size in plan.prompt_tokens]
    per_request = max(i + o for i, o in per_size)
    counts = [plan.requests_for(c) for c in plan.concurrency]
    if any(n is None for n in counts):
        return Estimate(None, per_request, None, None)
    n_levels = sum(n or 0 for n in counts)
    tokens = sum(n_levels * (i + o) for i, o in per_size)
    price = settings.price_for(plan.target.provider.name, plan.target.model)
    cost = None
    if price is not None:
        cost = sum(n_levels * (i * price.input_per_mtok + o * price.output_per_mtok) for i, o in per_size) / 1e6
    return Estimate(n_levels * len(per_size), per_request, tokens, cost)


@dataclass(frozen=True)
class Allowance:
    """What the sweep may spend: the tightest configured daily budget (global, provider)."""

    tokens: int | None
    cost_usd: float | None
    where: str  # the config keys the limits come from

    @classmethod
    def of(cls, settings: Settings, provider: str) -> Allowance:
        """The budgets, less what the daemon already spent today (its stored state)."""
        return cls.left(settings, provider, spent_today(settings.storage.path))

    @classmethod
    def left(cls, settings: Settings, provider: str, spent: dict[str, Any],
             reserve: tuple[int, float, int, float] = (0, 0.0, 0, 0.0), note: str = "") -> Allowance:
        """The budgets less `spent` ({"tokens", "cost", "providers": {name: (tokens, cost)}})
        and less `reserve` (global tokens, cost, this provider's tokens, cost) kept for others."""
        own = settings.provider_budgets().get(provider)
        p_tokens, p_cost = spent["providers"].get(provider, (0, 0.0))
        g_tok, g_cost, r_tok, r_cost = reserve
        tokens = [v - t for v, t in ((settings.budgets.daily_tokens, spent["tokens"] + g_tok),
                                     (own.daily_tokens if own else None, p_tokens + r_tok)) if v is not None]
        costs = [v - c for v, c in ((settings.budgets.daily_cost_usd, spent["cost"] + g_cost),
                                    (own.daily_cost_usd if own else None, p_cost + r_cost)) if v is not None]
        where = f"budgets / providers[{provider}].budget"
        if spent["tokens"]:
            where += f", less {spent['tokens']} tokens the daemon spent today"
        where += note
        return cls(max(0, min(tokens)) if tokens else None, max(0.0, min(costs)) if costs else None, where)

    def refuses(self, est: Estimate) -> str | None:
        if est.tokens is not None and self.tokens is not None and est.tokens > self.tokens:
            return (f"the sweep would spend about {est.tokens} tokens, past the {self.tokens} tokens the daily "
                    f"budgets allow ({self.where}); use fewer levels, --requests or --prompt-tokens")
        if est.cost_usd is not None and self.cost_usd is not None and est.cost_usd > self.cost_usd:
            return (f"the sweep would cost about ${est.cost_usd:.4f}, past the ${self.cost_usd:g} the daily "
                    f"budgets allow ({self.where})")
        return None


def spent_today(path: str) -> dict[str, Any]:
    """Today's (UTC) spending by the daemon, from its store: read-only, and nothing when
    there is no store yet or it cannot be read (the sweep is then held to the budgets alone)."""
    none: dict[str, Any] = {"tokens": 0, "cost": 0.0, "providers": {}}
    if not Path(path).is_file():
        return none
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)
        try:
            rows = conn.execute("SELECT value FROM kv WHERE key = 'budget'").fetchall()
        finally:
            conn.close()
        state = json.loads(rows[0][0]) if rows else None
    except (sqlite3.Error, ValueError):
        return none
    if not isinstance(state, dict) or state.get("day") != datetime.now(UTC).strftime("%Y-%m-%d"):
        return none
    providers = state.get("providers")
    if not isinstance(providers, dict):
        providers = {}
    try:
        return {"tokens": int(state.get("tokens", 0)), "cost": float(state.get("cost", 0.0)),
                "providers": {str(k): (int(v[0]), float(v[1])) for k, v in providers.items()
                              if isinstance(v, list) and len(v) == 2}}
    except (TypeError, ValueError):
        return none


class _Spend:
    """What the sweep has spent, and whether one more request could pass the budgets."""

    def __init__(self, allowance: Allowance, settings: Settings, target: ProbeTarget, per_request: int) -> None:
        self.allowance = allowance
        self.price = settings.price_for(target.provider.name, target.model)
        self.per_request = per_request
        self.tokens = 0
        self.cost = 0.0

    def add(self, r: ProbeResult) -> None:
        inp, out = r.input_tokens or 0, r.output_tokens or 0
        self.tokens += inp + out
        if self.price is not None:
            self.cost += (inp * self.price.input_per_mtok + out * self.price.output_per_mtok) / 1e6

    def room_for(self, in_flight: int) -> bool:
        """One more request (with `in_flight` still running) stays within the budgets."""
        a = self.allowance
        worst = (in_flight + 1) * self.per_request
        if a.tokens is not None and self.tokens + worst > a.tokens:
            return False
        if a.cost_usd is not None and self.price is not None:
            rate = max(self.price.input_per_mtok, self.price.output_per_mtok) / 1e6
            if self.cost + worst * rate > a.cost_usd:
                return False
        return True


async def run_level(client: Any, target: ProbeTarget, c: int, requests: int | None, duration: float | None,
                    spend: _Spend, progress: Progress | None = None, prompt_tokens: int | None = None,
                    level: Level | None = None, on_result: Callable[[ProbeResult], None] | None = None) -> Level:
    """One level: `c` workers, each starting its next stream when the last one ends. `level`
    (when given) fills as streams finish, so a cancelled level still holds what it measured."""
    loop = asyncio.get_running_loop()
    level = level if level is not None else Level(c, prompt_tokens)
    start = loop.time()
    deadline = start + duration if duration is not None else None
    started = 0
    in_flight = 0
    pause_until = 0.0
    failures_429 = 0
    last_end = start

    def hold(r: ProbeResult) -> None:
        """A 429: every worker waits (Retry-After, else a growing backoff), never hammers."""
        nonlocal pause_until, failures_429
        failures_429 += 1
        wait = r.retry_after if r.retry_after is not None else min(MAX_BACKOFF, 2.0 ** (failures_429 - 1))
        wait = min(wait, MAX_RETRY_AFTER)
        if r.retry_after is not None:
            level.retry_after_max = max(level.retry_after_max or 0.0, r.retry_after)
        now = loop.time()
        until = now + wait
        if until > pause_until:
            level.backoff += until - max(now, pause_until)
            pause_until = until

    async def worker() -> None:
        nonlocal started, in_flight, last_end
        while True:
            while (now := loop.time()) < pause_until:
                await asyncio.sleep(pause_until - now)
            if requests is not None and started >= requests:
                return
            if deadline is not None and loop.time() >= deadline:
                return
            if not spend.room_for(in_flight):
                level.stopped = "budget"
                return
            started += 1
            in_flight += 1
            try:
                r = await run_probe(client, target)
            finally:
                in_flight -= 1
            last_end = loop.time()
            level.results.append(r)
            spend.add(r)
            if on_result is not None:
                on_result(r)
            if r.outcome is Outcome.RATE_LIMITED:
                hold(r)
            if progress is not None:
                total = f"/{requests}" if requests is not None else f" in {loop.time() - start:.0f}/{duration:g}s"
                progress(f"sweep c={c} prompt={prompt_tokens or '-'}: {len(level.results)}{total} requests")

    try:
        await asyncio.gather(*(worker() for _ in range(c)))
    finally:
        level.wall = last_end - start
    return level


async def run_sweep(settings: Settings, plan: Plan, progress: Progress | None = None, *,
                    levels: list[Level] | None = None, allowance: Allowance | None = None,
                    on_result: Callable[[ProbeResult], None] | None = None) -> list[Level]:
    """Every level, one after the other. `levels` (when given) is filled as the sweep goes,
    so a cancelled sweep leaves its finished levels and the measured part of the last one."""
    est = estimate(settings, plan)
    if allowance is None:
        allowance = Allowance.of(settings, plan.target.provider.name)
    spend = _Spend(allowance, settings, plan.target, est.tokens_per_request)
    levels = levels if levels is not None else []
    async with new_client(max_connections=max(plan.concurrency) + 8) as client:
        for size in plan.prompt_tokens:
            target = padded(plan.target, size)
            for c in plan.concurrency:
                level = Level(c, size)
                levels.append(level)
                await run_level(client, target, c, plan.requests_for(c), plan.duration, spend,
                                progress, size, level, on_result)
                if level.stopped == "budget":
                    return levels
    return levels


def saturation(summaries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first level (in sweep order) where the target saturates, per the rule: ttft
    p50 at least 1.5x the single-stream p50, or aggregate tokens/s up less than 10% on
    the previous level. Each prompt size is judged against its own levels."""
    by_size: dict[Any, list[dict[str, Any]]] = {}
    for s in summaries:
        by_size.setdefault(s["prompt_tokens"], []).append(s)
    for rows in by_size.values():
        timed = [s for s in rows if s["ttft_p50"] is not None]
        # single-stream: concurrency 1, else the lowest level swept
        base = next((s for s in timed if s["concurrency"] == 1), timed[0] if timed else None)
        prev = None
        for s in rows:
            if base is not None and s is not base and s["ttft_p50"] is not None \
                    and s["ttft_p50"] >= TTFT_FACTOR * base["ttft_p50"]:
                return _knee(s, f"ttft p50 {s['ttft_p50']:.3f}s is {s['ttft_p50'] / base['ttft_p50']:.1f}x "
                                f"the single-stream {base['ttft_p50']:.3f}s")
            if prev is not None and prev["aggregate_output_tps"]:
                now = s["aggregate_output_tps"] or 0.0
                growth = now / prev["aggregate_output_tps"] - 1
                if growth < MIN_GROWTH:
                    return _knee(s, f"aggregate output tokens/s {now:.1f} grew {growth:+.0%} over "
                                    f"{prev['aggregate_output_tps']:.1f} at concurrency {prev['concurrency']}")
            prev = s
    return None


def _knee(s: dict[str, Any], reason: str) -> dict[str, Any]:
    return {"concurrency": s["concurrency"], "prompt_tokens": s["prompt_tokens"], "reason": reason}


def report(plan: Plan, levels: list[Level], est: Estimate) -> dict[str, Any]:
    summaries = [lv.summary() for lv in levels]
    return {
        "target": plan.target.key,
        "levels": summaries,
        "saturation": saturation(summaries),
        "estimate": {"requests": est.requests, "tokens": est.tokens, "cost_usd": est.cost_usd},
    }


def table(rep: dict[str, Any]) -> str:
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v * 1000:.0f}"

    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    lines = [f"sweep {rep['target']}  (times in ms; tok/s = output tokens per second)",
             f"{'conc':>5} {'prompt':>7} {'req':>5} {'ok':>5} {'ttft50':>7} {'ttft95':>7} {'e2e50':>7} "
             f"{'tok/s':>7} {'agg':>8}  errors"]
    for s in rep["levels"]:
        errors = ", ".join(f"{k} {v}" for k, v in s["errors"].items())
        if s["backoff_seconds"]:
            errors += f"{'; ' if errors else ''}backed off {s['backoff_seconds']:.1f}s on 429"
        if s["stopped"]:
            errors += f"{'; ' if errors else ''}stopped: {s['stopped']}"
        lines.append(f"{s['concurrency']:>5} {s['prompt_tokens'] or '-':>7} {s['requests']:>5} {s['ok']:>5} "
                     f"{ms(s['ttft_p50']):>7} {ms(s['ttft_p95']):>7} {ms(s['e2e_p50']):>7} "
                     f"{num(s['output_tps_p50']):>7} {num(s['aggregate_output_tps']):>8}  {errors}")
    sat = rep["saturation"]
    if sat is None:
        lines.append("saturation: none within the levels swept")
    else:
        size = f", prompt {sat['prompt_tokens']} tokens" if sat["prompt_tokens"] else ""
        lines.append(f"saturation: concurrency {sat['concurrency']}{size} ({sat['reason']})")
    return "\n".join(lines)


def terminal_progress(out: TextIO) -> Progress | None:
    """A one-line progress display on a terminal; nothing otherwise."""
    if not out.isatty():
        return None
    last = [0.0]

    def show(text: str) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.1:
            last[0] = now
            out.write(f"\r\x1b[K{text}")
            out.flush()

    return show


def ask(question: str, stdin: TextIO = sys.stdin, out: TextIO = sys.stderr) -> bool:
    out.write(question)
    out.flush()
    return stdin.readline().strip().lower() in ("y", "yes")


def plan_targets(settings: Settings) -> list[ProbeTarget]:
    """Every target as far as spending goes (probe and interval), without resolving any
    secret: `check --offline` estimates with these."""
    from probes.target import ProviderSpec

    return [ProbeTarget(ProviderSpec(prov.name, prov.kind, prov.base_url), m.name, profile.spec(),
                        region=settings.region)
            for prov, m, profile in settings.target_entries()]


def sweep_warnings(settings: Settings) -> list[str]:
    """Scheduled sweeps the budgets will always refuse: 'key: reason' lines for `check` and `run`."""
    from daemon.sweep_runner import probe_reserve

    out: list[str] = []
    targets = plan_targets(settings)
    by_key = {t.key: t for t in targets}
    none: dict[str, Any] = {"tokens": 0, "cost": 0.0, "providers": {}}
    for i, w in enumerate(settings.sweeps):
        target = by_key[settings.sweep_key(w)]
        plan = Plan(target=target, concurrency=tuple(w.concurrency),
                    prompt_tokens=tuple(w.prompt_tokens) if w.prompt_tokens else (None,),
                    requests=w.requests, duration=w.duration)
        est = estimate(settings, plan)
        where = f"sweeps[{i}] ({w.name})"
        why = Allowance.left(settings, target.provider.name, none).refuses(est)
        if why is not None:
            out.append(f"{where}: every run will be refused: {why}")
            continue
        # the probes' share of a whole day: what a run just after midnight leaves the sweep
        day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        reserve = probe_reserve(settings, targets, target.provider.name, now=day)
        why = Allowance.left(settings, target.provider.name, none, reserve,
                             note=", less the regular probes' spending for a whole day").refuses(est)
        if why is not None:
            out.append(f"{where}: may be refused (it runs only on what the probes leave of the budgets): {why}")
    return out
