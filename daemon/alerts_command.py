"""`llm-vitals alert-test RECEIVER` and `llm-vitals silence add|list|expire`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from typing import Any

EXIT_OK, EXIT_FAIL, EXIT_CONFIG = 0, 1, 2


def _settings(path: str | None) -> Any:
    from daemon.cli import demo_config_path
    from daemon.config import ConfigError, load_settings

    try:
        return load_settings(path or demo_config_path())
    except ConfigError as exc:
        for line in exc.lines:
            print(f"error: {line}", file=sys.stderr)
        return None


def cmd_alert_test(args: argparse.Namespace) -> int:
    from alerts.engine import AlertEngine
    from core.aggregator import Aggregator
    from core.store import Store

    s = _settings(args.config)
    if s is None:
        return EXIT_CONFIG

    async def run() -> tuple[bool, str]:
        engine = AlertEngine(s.alerts, store=Store(":memory:"), stats=Aggregator(), region=s.region)
        return await engine.send_test(args.receiver)

    ok, detail = asyncio.run(run())
    print(f"{'' if ok else 'error: '}{args.receiver}: {detail}", file=sys.stdout if ok else sys.stderr)
    if detail.startswith("unknown receiver"):
        return EXIT_CONFIG
    return EXIT_OK if ok else EXIT_FAIL


def cmd_silence(args: argparse.Namespace) -> int:
    from alerts.silences import (
        MAX_SILENCE_SECONDS,
        SILENCES_KEY,
        add_silence,
        expire_silence,
        silence_duration,
    )
    from core.store import Store

    s = _settings(args.config)
    if s is None:
        return EXIT_CONFIG
    store = Store(s.storage.path)
    if args.action == "add":
        match = {}
        for m in args.match or []:
            k, sep, v = m.partition("=")
            if not sep or not k:
                print(f"error: --match {m!r}: expected label=value", file=sys.stderr)
                return EXIT_CONFIG
            match[k] = v
        if not match:
            print("error: silence add needs at least one --match label=value", file=sys.stderr)
            return EXIT_CONFIG
        try:
            duration = silence_duration(args.duration)
        except ValueError as exc:
            print(f"error: --duration: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        sid = add_silence(store, match, duration, args.comment or "", "cli")
        print(sid)
        return EXIT_OK
    if args.action == "list":
        import time

        now = time.time()
        active = [item for item in store.get_state(SILENCES_KEY, []) if item["ends_at"] > now]
        if not active:
            print("no active silences")
        for item in active:
            # one saved before durations were bounded (Infinity, year 33715) shows the bound
            until = min(item["ends_at"], now + MAX_SILENCE_SECONDS)
            ends = datetime.fromtimestamp(until, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            where = ",".join(f"{k}={v}" for k, v in item["match"].items())
            print(f"{item['id']}  until {ends}  {where}  {item.get('comment', '')}")
        return EXIT_OK
    if not args.id:
        print("error: silence expire needs an ID", file=sys.stderr)
        return EXIT_CONFIG
    if expire_silence(store, args.id):
        print(f"expired {args.id}")
        return EXIT_OK
    print(f"error: no active silence {args.id}", file=sys.stderr)
    return EXIT_FAIL


def add_commands(sub: Any) -> None:
    config_help = "the YAML config (default: the built-in demo's)"
    t = sub.add_parser("alert-test", help="send a test notification to a receiver")
    t.add_argument("receiver", help="the receiver's name in alerts.receivers")
    t.add_argument("-c", "--config", help=config_help)
    t.set_defaults(func=cmd_alert_test)

    s = sub.add_parser("silence", help="add, list or expire alert silences")
    s.add_argument("action", choices=("add", "list", "expire"), help="what to do")
    s.add_argument("id", nargs="?", help="the silence to expire (as `add` and `list` print it)")
    s.add_argument("-c", "--config", help=config_help)
    s.add_argument("--match", action="append", metavar="LABEL=VALUE",
                   help="silence alerts with this label value (repeatable: all must match)")
    s.add_argument("--duration", default="1h", help="how long, e.g. 30m, 2h, 3d (default 1h, at most 90d)")
    s.add_argument("--comment", help="why (shown in list and to the API)")
    s.set_defaults(func=cmd_silence)
