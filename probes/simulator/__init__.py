"""The bundled LLM provider simulator: every wire protocol llm-vitals speaks, with
scripted latency, faults and degradation schedules. Default target, test fixture and
benchmark target."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys

from probes.simulator.scenario import Scenario, ScenarioError, load_scenario
from probes.simulator.server import Simulator

__all__ = ["Scenario", "ScenarioError", "Simulator", "load_scenario", "main"]


async def _serve(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.scenario)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if args.exit_with_parent:
        # The parent decides when we stop (it closes our stdin, or dies). A SIGTERM sent
        # to the whole group (systemd's control-group kill, `timeout`) must not cut the
        # streams of the probes the daemon is still draining.
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: None)
        _stop_on_stdin_eof(loop, stop)
    else:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    async with Simulator(scenario, args.host, args.port, truth_log=args.truth_log) as sim:
        print(json.dumps({"listening": f"{sim.host}:{sim.port}"}), flush=True)
        await stop.wait()
    return 0


def _stop_on_stdin_eof(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Stop when the parent's end of our stdin pipe closes: a daemon killed with SIGKILL
    (or crashed) must not leave its simulator behind holding the port."""
    fd = sys.stdin.fileno()

    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            stop.set()

    loop.add_reader(fd, readable)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="llm-vitals simulate", description="Serve the bundled LLM provider simulator.")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--scenario", help="scenario YAML (default: the built-in one)")
    ap.add_argument("--truth-log", help="JSON lines: when each token was written (ground truth)")
    ap.add_argument("--exit-with-parent", action="store_true",
                    help="exit when stdin reaches EOF (the parent process died); used by `llm-vitals run`")
    args = ap.parse_args(argv)
    try:
        return asyncio.run(_serve(args))
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
