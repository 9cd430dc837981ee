"""`llm-vitals probe`: one-shot probes, printed as a table or JSON lines."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import TextIO

from core.result import ProbeResult
from daemon.config import Settings
from daemon.simulator_process import simulator_process
from probes.clients import ClientPool
from probes.runner import run_probe
from probes.target import ProbeTarget

Emit = Callable[[ProbeResult], None]


class TargetSelectionError(ValueError):
    pass


def select(targets: list[ProbeTarget], wanted: list[str]) -> list[ProbeTarget]:
    """`provider/model` picks every probe of that model; `provider/model/probe` one target."""
    if not wanted:
        return targets
    chosen: list[ProbeTarget] = []
    for w in wanted:
        parts = w.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise TargetSelectionError(f"--target {w!r}: expected PROVIDER/MODEL[/PROBE]")
        hits = [
            t
            for t in targets
            if t.provider.name == parts[0]
            and t.model == parts[1]
            and (len(parts) == 2 or t.probe.name == parts[2])
        ]
        if not hits:
            known = ", ".join(sorted(t.key for t in targets)) or "none"
            raise TargetSelectionError(f"--target {w!r}: no such target (configured: {known})")
        chosen.extend(t for t in hits if t not in chosen)
    return chosen


async def run_probes(
    settings: Settings,
    wanted: list[str],
    count: int,
    concurrency: int,
    emit: Emit,
) -> list[ProbeResult]:
    async with AsyncExitStack() as stack:
        sim_url = None
        if settings.simulator.enabled:
            sim_url = await stack.enter_async_context(simulator_process(settings.simulator))
        targets = select(settings.targets(sim_url), wanted)
        clients = ClientPool()
        stack.push_async_callback(clients.aclose)
        sem = asyncio.Semaphore(concurrency)
        results: list[ProbeResult] = []

        async def one(t: ProbeTarget) -> None:
            async with sem:
                r = await run_probe(clients.client_for(t.key), t)
            results.append(r)
            emit(r)

        jobs = [t for _ in range(count) for t in targets]
        await asyncio.gather(*(one(t) for t in jobs))
        return results


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.0f}"


TABLE_HEADER = (
    f"{'target':<42} {'outcome':<16} {'ttfb':>6} {'ttft':>6} {'content':>7} {'e2e':>6} "
    f"{'tokens':>7} {'tok/s':>6}  error"
)


def table_row(r: ProbeResult) -> str:
    tokens = "-" if r.output_tokens is None else f"{r.output_tokens}{'~' if r.tokens_source == 'estimated' else ''}"
    tps = "-" if r.output_tps is None else f"{r.output_tps:.0f}"
    return (
        f"{r.target:<42} {r.outcome.value:<16} {_ms(r.ttfb):>6} {_ms(r.ttft):>6} "
        f"{_ms(r.ttft_content):>7} {_ms(r.e2e):>6} {tokens:>7} {tps:>6}  {r.error or ''}"
    )


def printer(fmt: str, out: TextIO = sys.stdout) -> Emit:
    if fmt == "json":

        def emit(r: ProbeResult) -> None:
            out.write(json.dumps(r.to_json_dict()) + "\n")
            out.flush()

    else:
        started = False

        def emit(r: ProbeResult) -> None:
            nonlocal started
            if not started:  # with the first row: a bad --target prints its error alone
                out.write(TABLE_HEADER + "  (times in ms; ~ = estimated tokens)\n")
                started = True
            out.write(table_row(r) + "\n")
            out.flush()

    return emit
