"""A scheduled sweep's streams, in a child process of the daemon at a lower CPU priority.

Why a process: a sweep parses thousands of stream chunks a second. On the daemon's event
loop that starved the regular probes (bench/sweep_lag.py --in-loop, 20 targets at 1 s, a
sweep of 8..64 streams, 2 cores: schedule lag p50 1.4 -> 86 ms, p99 32 -> 343 ms, probes
skipped). In a child niced by NICE the kernel gives the daemon the CPU first (p50 1.4 ->
1.5 ms, none skipped); the sweep's timings stay right (they are the kernel's arrival stamps,
as every probe's).

Protocol: the daemon writes one JSON job to stdin (settings, simulator URL, sweep name,
allowance) and closes it; the child writes JSON lines to stdout as it goes: `level` when a
level starts, `result` for every finished stream (ProbeResult.to_record), `end` when a level
ends (wall time, back-off, why it stopped). SIGTERM cancels the sweep; the level in
progress still gets its `end`, so the daemon records what was measured. A daemon killed
outright leaves no orphan sweeping on: the next finished stream's write finds the pipe
closed and the worker exits (0.24 s, 3 requests after the reader left, tried by hand).

    python -m daemon.sweep_worker < job.json
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any, TextIO

import structlog

from core.result import ProbeResult
from daemon import logs
from daemon.config import Settings, _register_url_secrets
from daemon.sweep import Allowance, Level, Plan, run_sweep

NICE = 10

log = structlog.get_logger("llm_vitals.sweep_worker")


def plan_of(settings: Settings, sweep_name: str, simulator_url: str | None) -> Plan:
    cfg = next(w for w in settings.sweeps if w.name == sweep_name)
    key = settings.sweep_key(cfg)
    target = next(t for t in settings.targets(simulator_url) if t.key == key)
    return Plan(target=target, concurrency=tuple(cfg.concurrency),
                prompt_tokens=tuple(cfg.prompt_tokens) if cfg.prompt_tokens else (None,),
                requests=cfg.requests, duration=cfg.duration)


def level_end(lv: Level) -> dict[str, Any]:
    return {"end": {"wall": lv.wall, "backoff": lv.backoff, "retry_after_max": lv.retry_after_max,
                    "stopped": lv.stopped}}


class _Levels(list[Level]):
    """run_sweep's level list, telling the daemon as each level starts (and ends)."""

    def __init__(self, emit: Any) -> None:
        super().__init__()
        self._emit = emit

    def append(self, lv: Level) -> None:
        if self:
            self._emit(level_end(self[-1]))
        super().append(lv)
        self._emit({"level": {"concurrency": lv.concurrency, "prompt_tokens": lv.prompt_tokens}})


async def work(job: dict[str, Any], out: TextIO) -> None:
    settings = Settings(**job["settings"])
    _register_url_secrets(settings)  # as load_settings does: user:password@ in a URL is redacted too
    plan = plan_of(settings, job["sweep"], job.get("simulator_url"))
    a = job["allowance"]
    allowance = Allowance(a["tokens"], a["cost_usd"], a["where"])

    def emit(msg: dict[str, Any]) -> None:
        out.write(json.dumps(msg) + "\n")
        out.flush()

    def result(r: ProbeResult) -> None:
        emit({"result": r.to_record()})

    levels = _Levels(emit)
    main = asyncio.current_task()
    assert main is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
    try:
        await run_sweep(settings, plan, levels=levels, allowance=allowance, on_result=result)
    finally:  # done or cancelled: the last level's end (its wall time is set by now)
        if levels:
            emit(level_end(levels[-1]))


def main() -> int:
    try:
        os.nice(NICE)
    except OSError:
        pass  # not allowed here: the same priority as the daemon, still off its event loop
    job = json.loads(sys.stdin.read())
    # the protocol keeps the real stdout; anything else printed (a library's log line) goes
    # to stderr, the daemon's log, instead of into the protocol
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    logs.configure()  # the daemon's format, secrets redacted (the settings name them)
    try:
        asyncio.run(work(job, out))
    except asyncio.CancelledError:
        return 0
    except BrokenPipeError:
        # the daemon is gone (killed): stop at once, the streams in flight were the last ones
        log.warning("sweep_worker_daemon_gone", sweep=job.get("sweep"))
        return 0
    except Exception:
        log.exception("sweep_worker_failed", sweep=job.get("sweep"))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
