"""`llm-vitals report` and `llm-vitals export`: the stored probe history, out of the daemon.

Both read the store named by the config's `storage.path`, read-only (the daemon may be
running). Exit codes: 0 ok, 1 the output could not be written, 2 bad config or arguments
(including a store that does not exist and a --target that matches nothing stored).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from core.durations import parse_duration
from daemon import history
from daemon.config import ConfigError, Settings, load_settings

EXIT_OK, EXIT_FAIL, EXIT_CONFIG = 0, 1, 2


class UsageError(ValueError):
    pass


def _settings(path: str) -> Settings:
    try:
        return load_settings(path)
    except ConfigError as exc:
        raise UsageError("\n".join(exc.lines)) from None


def _since(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"--since: {exc}") from None
    if seconds <= 0:
        raise UsageError("--since: must be greater than 0")
    return seconds


def _check_targets(wanted: list[str]) -> list[str]:
    for w in wanted:
        parts = w.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise UsageError(f"--target {w!r}: expected PROVIDER/MODEL[/PROBE]")
    return wanted


def _match_stored(conn: sqlite3.Connection, wanted: list[str], since: float, until: float) -> None:
    """A --target that matches no probe stored in the range is a typo until shown otherwise."""
    stored = history.targets_stored(conn, since, until)
    for w in wanted:
        if not history.select_targets(stored, [w]):
            known = ", ".join(stored) or "none"
            raise UsageError(f"--target {w!r}: no probe of it stored in the range (stored: {known})")


def _price(settings: Settings) -> history.Price:
    def price(key: str) -> tuple[float, float] | None:
        provider, model = key.split("/")[:2]
        p = settings.price_for(provider, model)
        return None if p is None else (p.input_per_mtok, p.output_per_mtok)

    return price


@contextmanager
def _output(path: str | None) -> Iterator[TextIO]:
    """stdout, or FILE written whole or not at all (a temporary file renamed at the end)."""
    if path is None or path == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            yield f
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _run(args: argparse.Namespace, body: str) -> int:
    try:
        settings = _settings(args.config)
        since_s = _since(args.since)
        wanted = _check_targets(args.target or [])
        until = time.time()
        since = until - since_s
        with history.open_readonly(settings.storage.path) as conn:
            if wanted:
                _match_stored(conn, wanted, since, until)
            if body == "export":
                return _export(conn, args, since, until, wanted)
            return _report(conn, args, settings, since, until, wanted)
    except (UsageError, history.HistoryError) as exc:
        for line in str(exc).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return EXIT_CONFIG
    except BrokenPipeError:
        # `export ... | head`: the reader left; nothing is wrong with the export
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:
        print(f"error: cannot write {args.out}: {exc.strerror}", file=sys.stderr)
        return EXIT_FAIL


def _export(conn: sqlite3.Connection, args: argparse.Namespace, since: float, until: float, wanted: list[str]) -> int:
    from daemon import export

    with _output(args.out) as out:
        n = export.write(export.probe_dicts(conn, since, until, wanted), args.format, out)
    if args.out not in (None, "-"):
        print(f"{args.out}: {n} probes", file=sys.stderr)
    return EXIT_OK


def _report(conn: sqlite3.Connection, args: argparse.Namespace, settings: Settings, since: float, until: float,
            wanted: list[str]) -> int:
    from daemon import report

    data = report.build(conn, since, until, wanted, _price(settings), str(args.config), settings.region)
    text = report.html(data) if args.format == "html" else report.markdown(data)
    out_path = args.out if args.out is not None else ("report.html" if args.format == "html" else None)
    with _output(out_path) as out:
        out.write(text)
    if out_path not in (None, "-"):
        print(f"{out_path}: {len(data.targets)} targets, {data.probes} probes, {len(text.encode()) / 1e6:.2f} MB",
              file=sys.stderr)
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    return _run(args, "report")


def cmd_export(args: argparse.Namespace) -> int:
    return _run(args, "export")


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    r = sub.add_parser("report", help="write a self-contained HTML report (or a Markdown summary) of the stored probes")
    r.add_argument("-c", "--config", required=True)
    r.add_argument("--since", default="24h", help="how far back (default 24h)")
    r.add_argument("--target", action="append", metavar="PROVIDER/MODEL[/PROBE]")
    r.add_argument("--out", help="output file (html default: report.html; md default: stdout; - for stdout)")
    r.add_argument("--format", choices=("html", "md"), default="html")
    r.set_defaults(func=cmd_report)

    e = sub.add_parser("export", help="every stored probe as CSV or JSON lines (the fields of probe --format json)")
    e.add_argument("-c", "--config", required=True)
    e.add_argument("--since", default="7d", help="how far back (default 7d)")
    e.add_argument("--target", action="append", metavar="PROVIDER/MODEL[/PROBE]")
    e.add_argument("--format", choices=("csv", "jsonl"), required=True)
    e.add_argument("--out", help="output file (default: stdout)")
    e.set_defaults(func=cmd_export)
