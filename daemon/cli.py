"""The `llm-vitals` command line. Exit codes: 0 ok, 1 a probe/check failed, 2 bad config/usage/input."""

from __future__ import annotations

import argparse
import asyncio
import sys
from importlib import resources
from pathlib import Path

from daemon.config import ConfigError, MissingSecret, Settings, load_settings

EXIT_OK, EXIT_FAIL, EXIT_CONFIG = 0, 1, 2


def demo_config_path() -> Path:
    return Path(str(resources.files("daemon") / "demo.yaml"))


def _load(path: str | None) -> Settings:
    return load_settings(path if path is not None else demo_config_path())


def _config_error(exc: ConfigError | MissingSecret | ValueError, path: str | None) -> int:
    if isinstance(exc, ConfigError):
        for line in exc.lines:
            print(f"error: {line}", file=sys.stderr)
    else:
        print(f"error: {path or demo_config_path()}: {exc}", file=sys.stderr)
    return EXIT_CONFIG


def cmd_probe(args: argparse.Namespace) -> int:
    from daemon.probe_command import TargetSelectionError, printer, run_probes

    try:
        settings = _load(args.config)
        results = asyncio.run(
            run_probes(settings, args.target or [], args.count, args.concurrency, printer(args.format))
        )
    except (ConfigError, MissingSecret, TargetSelectionError) as exc:
        return _config_error(exc, args.config)
    return EXIT_OK if results and all(r.ok for r in results) else EXIT_FAIL


def cmd_check(args: argparse.Namespace) -> int:
    try:
        settings = _load(args.config)
    except ConfigError as exc:
        return _config_error(exc, args.config)
    problems = settings.check_secrets()
    source = args.config or demo_config_path()
    for p in problems:
        print(f"error: {source}: {p}", file=sys.stderr)
    if problems:
        return EXIT_CONFIG
    n = len(settings.target_entries())
    print(f"{source}: ok ({len(settings.providers)} providers, {n} targets, "
          f"{len(settings.alerts.rules)} alert rules, {len(settings.alerts.receivers)} receivers)")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from daemon.process import run_daemon

    return run_daemon(args.config, demo_config_path())


def cmd_simulate(args: argparse.Namespace) -> int:
    from probes.simulator import main as simulator_main

    argv = ["--host", args.host, "--port", str(args.port)]
    if args.scenario:
        argv += ["--scenario", args.scenario]
    if args.truth_log:
        argv += ["--truth-log", args.truth_log]
    return simulator_main(argv)


def cmd_detect(args: argparse.Namespace) -> int:
    from pathlib import Path

    from daemon.detect_command import run_detect
    from daemon.detector import DetectorConfig

    if args.out is None and len(args.files) > 1:
        print("error: several files need --out DIR (one output file per input)", file=sys.stderr)
        return EXIT_CONFIG
    names = [Path(f).name for f in args.files]
    clash = sorted({n for n in names if names.count(n) > 1})
    if args.out is not None and clash:
        print(f"error: inputs with the same file name would overwrite each other in {args.out}: "
              f"{', '.join(clash)}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        cfg = load_settings(args.config).detector if args.config else DetectorConfig()
    except ConfigError as exc:
        return _config_error(exc, args.config)
    return run_detect(cfg, args.files, args.direction, args.out)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="llm-vitals", description="Synthetic monitoring for LLM providers.")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the daemon (no -c: built-in demo against the bundled simulator)")
    run.add_argument("-c", "--config")
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check", help="validate a config and that every referenced secret exists")
    check.add_argument("-c", "--config")
    check.set_defaults(func=cmd_check)

    probe = sub.add_parser("probe", help="run one-shot probes and print the results")
    probe.add_argument("-c", "--config")
    probe.add_argument("--target", action="append", metavar="PROVIDER/MODEL[/PROBE]")
    probe.add_argument("--count", type=int, default=1)
    probe.add_argument("--concurrency", type=int, default=8)
    probe.add_argument("--format", choices=("table", "json"), default="table")
    probe.set_defaults(func=cmd_probe)

    sim = sub.add_parser("simulate", help="serve the bundled LLM provider simulator")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8765)
    sim.add_argument("--scenario")
    sim.add_argument("--truth-log")
    sim.set_defaults(func=cmd_simulate)

    det = sub.add_parser("detect", help="replay CSV series (timestamp,value) through the anomaly detector")
    det.add_argument("-c", "--config", help="take the detector: settings from this config (default: built-in)")
    det.add_argument("--direction", choices=("up", "down", "both"), default="up",
                     help="which change is anomalous: a rise (latency, the default), a fall, or either")
    det.add_argument("--out", metavar="DIR", help="write DIR/<input file name> per input (default: stdout)")
    det.add_argument("files", nargs="+", metavar="FILE")
    det.set_defaults(func=cmd_detect)

    try:
        from alerts.cli import add_commands
    except ImportError:
        pass
    else:
        add_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # `silence expire -c FILE ID`: argparse fills the optional ID before it sees the options
    if extra and getattr(args, "command", None) == "silence" and args.id is None and len(extra) == 1 \
            and not extra[0].startswith("-"):
        args.id, extra = extra[0], []
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "count", 1) < 1 or getattr(args, "concurrency", 1) < 1:
        parser.error("--count and --concurrency must be at least 1")
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
