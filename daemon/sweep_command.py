"""The `llm-vitals sweep` command: arguments, the spend question, the run, the output.

Exit codes: 0 the sweep ran, 1 it ran but no request succeeded, 2 bad config or usage, a
budget the sweep would pass, or a refusal (no --yes where no one can be asked).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from contextlib import AsyncExitStack
from typing import Any

from core.durations import parse_duration
from core.secrets import MissingSecret
from daemon.config import ConfigError
from daemon.sweep import (
    DEFAULT_CONCURRENCY,
    Allowance,
    Plan,
    SweepError,
    ask,
    estimate,
    report,
    run_sweep,
    table,
    terminal_progress,
)

EXIT_OK, EXIT_FAIL, EXIT_CONFIG = 0, 1, 2


def _ints(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what}: expected numbers separated by commas, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"{what}: expected numbers of at least 1, got {text!r}")
    return values


def _duration(text: str) -> float:
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value <= 0:
        raise argparse.ArgumentTypeError("--duration must be more than 0")
    return value


def add_command(sub: Any, config_help: str) -> None:
    p = sub.add_parser("sweep", help="capacity sweep of one target: latency and throughput against concurrency")
    p.add_argument("-c", "--config", help=config_help)
    p.add_argument("--target", required=True, metavar="PROVIDER/MODEL[/PROBE]",
                   help="the target to sweep (PROVIDER/MODEL: its first probe profile)")
    p.add_argument("--concurrency", dest="sweep_concurrency", metavar="C1,C2,...",
                   type=lambda s: _ints(s, "--concurrency"), default=DEFAULT_CONCURRENCY,
                   help="streams kept in flight, one level each (default 1,2,4,8,16,32)")
    how_long = p.add_mutually_exclusive_group()
    how_long.add_argument("--requests", type=lambda s: _ints(s, "--requests")[0], metavar="N",
                          help="requests per level (default 4 x concurrency, at least 10)")
    how_long.add_argument("--duration", type=_duration, metavar="DURATION", help="time per level, e.g. 30s")
    p.add_argument("--prompt-tokens", type=lambda s: _ints(s, "--prompt-tokens"), metavar="P1,P2,...",
                   help="prompt sizes in tokens, each swept over every level (default: the probe's own prompt)")
    p.add_argument("--format", choices=("table", "json"), default="table", help="a table, or one JSON object")
    p.add_argument("--yes", action="store_true", help="do not ask before spending (required when not on a terminal)")
    p.set_defaults(func=cmd_sweep)


def cmd_sweep(args: argparse.Namespace) -> int:
    from daemon.cli import _config_error, _load
    from daemon.probe_command import TargetSelectionError, select

    try:
        settings = _load(args.config)
        # the simulator's address is known once it runs (_run): a stand-in until then
        chosen = select(settings.targets("http://127.0.0.1:0" if settings.simulator.enabled else None),
                        [args.target])
        plan = Plan(target=chosen[0], concurrency=tuple(args.sweep_concurrency),
                    prompt_tokens=tuple(args.prompt_tokens) if args.prompt_tokens else (None,),
                    requests=args.requests, duration=args.duration)
        est = estimate(settings, plan)
        allowance = Allowance.of(settings, plan.target.provider.name)
        if (why := allowance.refuses(est)) is not None:
            raise SweepError(f"refused: {why}")
        print(f"sweep {plan.target.key}: {est.describe()}", file=sys.stderr)
        if not args.yes:
            if not sys.stdin.isatty():
                raise SweepError("refused: not on a terminal, so no one can confirm the spend: add --yes")
            if not ask("proceed? [y/N] "):
                print("not started", file=sys.stderr)
                return EXIT_CONFIG
        rep = asyncio.run(_run(settings, plan, est))
    except (ConfigError, MissingSecret, TargetSelectionError) as exc:
        return _config_error(exc, args.config)
    except SweepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.format == "json":
        print(json.dumps(rep))
    else:
        print(table(rep))
    return EXIT_OK if any(s["ok"] for s in rep["levels"]) else EXIT_FAIL


async def _run(settings: Any, plan: Plan, est: Any) -> dict[str, Any]:
    import dataclasses

    from daemon.simulator_process import simulator_process

    async with AsyncExitStack() as stack:
        if settings.simulator.enabled:
            url = await stack.enter_async_context(simulator_process(settings.simulator))
            # the same target, pointed at the simulator this run started
            fresh = [t for t in settings.targets(url) if t.key == plan.target.key]
            plan = dataclasses.replace(plan, target=fresh[0])
        progress = terminal_progress(sys.stderr)
        levels = await run_sweep(settings, plan, progress)
        if progress is not None:
            sys.stderr.write("\r\x1b[K")
        return report(plan, levels, est)
