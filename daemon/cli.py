"""The `llm-vitals` command line. Exit codes: 0 ok, 1 a probe/check failed, 2 bad config/usage/input."""

from __future__ import annotations

import argparse
import asyncio
import sys
from importlib import resources
from pathlib import Path

from core.secrets import MissingSecret
from daemon.config import ConfigError, Settings, load_settings, require_targets

EXIT_OK, EXIT_FAIL, EXIT_CONFIG = 0, 1, 2


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llm-vitals")
    except PackageNotFoundError:
        return "unknown (not installed)"


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
        require_targets(settings, str(args.config or demo_config_path()))
    except ConfigError as exc:
        return _config_error(exc, args.config)
    from core.store import storage_problem

    source = args.config or demo_config_path()
    problems = []
    if not args.offline:  # --offline: the config alone, as CI can check it without the secrets
        problems = settings.check_secrets()
        if (why := storage_problem(settings.storage.path)) is not None:
            problems.append(f"storage.path: {why}")
    for p in problems:
        print(f"error: {source}: {p}", file=sys.stderr)
    if problems:
        return EXIT_CONFIG
    from daemon.sweep import sweep_warnings

    for w in settings.warnings() + sweep_warnings(settings):
        print(f"warning: {source}: {w}", file=sys.stderr)
    n = len(settings.target_entries())
    counts = ", ".join(_plural(k, w) for k, w in ((len(settings.providers), "provider"), (n, "target"),
                                                   (len(settings.alerts.rules), "alert rule"),
                                                   (len(settings.alerts.receivers), "receiver")))
    extra = "; offline: secrets and storage not checked" if args.offline else ""
    print(f"{source}: ok ({counts}{extra})")
    return EXIT_OK


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def cmd_run(args: argparse.Namespace) -> int:
    import os

    from daemon.process import run_daemon

    if args.listen:
        # Through the environment, so a SIGHUP reload keeps the address given here.
        os.environ["LLM_VITALS_HTTP__LISTEN"] = args.listen

    return run_daemon(args.config, demo_config_path())


def cmd_simulate(args: argparse.Namespace) -> int:
    from probes.simulator import main as simulator_main

    argv = ["--host", args.host, "--port", str(args.port)]
    if args.scenario:
        argv += ["--scenario", args.scenario]
    if args.truth_log:
        argv += ["--truth-log", args.truth_log]
    return simulator_main(argv)


def cmd_config_schema(args: argparse.Namespace) -> int:
    import json

    from daemon.reference import config_schema

    print(json.dumps(config_schema(), indent=2, sort_keys=True))
    return EXIT_OK


def cmd_detect(args: argparse.Namespace) -> int:
    from pathlib import Path

    from detector.config import DetectorConfig
    from detector.replay import Rows, run_detect

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
    rows = Rows(time=args.time_column, value=args.value_column, probes=args.probes)
    return run_detect(cfg, args.files, args.direction, args.out, rows)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="llm-vitals", description="Synthetic monitoring for LLM providers.")
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True)
    config_help = "the YAML config (default: the built-in demo against the bundled simulator)"

    run = sub.add_parser("run", help="run the daemon (no -c: built-in demo against the bundled simulator)")
    run.add_argument("-c", "--config", help=config_help)
    run.add_argument("--listen", metavar="HOST:PORT", help="serve HTTP here instead of the config's http.listen")
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check", help="validate a config and that every referenced secret exists")
    check.add_argument("-c", "--config", help=config_help)
    check.add_argument("--offline", action="store_true",
                       help="check the config alone: not the secrets it names nor the storage path (for CI)")
    check.set_defaults(func=cmd_check)

    probe = sub.add_parser("probe", help="run one-shot probes and print the results")
    probe.add_argument("-c", "--config", help=config_help)
    probe.add_argument("--target", action="append", metavar="PROVIDER/MODEL[/PROBE]",
                       help="probe only this target (repeatable; default: every target)")
    probe.add_argument("--count", type=int, default=1, help="probes per target (default 1)")
    probe.add_argument("--concurrency", type=int, default=8, help="probes in flight at once (default 8)")
    probe.add_argument("--format", choices=("table", "json"), default="table",
                       help="a table for people, or one JSON object per probe per line (default table)")
    probe.set_defaults(func=cmd_probe)

    sim = sub.add_parser("simulate", help="serve the bundled LLM provider simulator")
    sim.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sim.add_argument("--port", type=int, default=8765, help="port to listen on (default 8765; 0: any free port)")
    sim.add_argument("--scenario", help="a scenario YAML: latencies, faults, degradations (default: the built-in one)")
    sim.add_argument("--truth-log", help="write every token's send time here (JSON lines), for timing benches")
    sim.set_defaults(func=cmd_simulate)

    from daemon.sweep_command import add_command as add_sweep_command

    add_sweep_command(sub, config_help)

    schema = sub.add_parser("config-schema", help="print the config file's JSON Schema (for editors)")
    schema.set_defaults(func=cmd_config_schema)

    from daemon.history_commands import add_commands as add_history_commands

    add_history_commands(sub)

    det = sub.add_parser("detect", help="replay CSV series (timestamp,value) through the anomaly detector")
    det.add_argument("-c", "--config", help="take the detector: settings from this config (default: built-in)")
    det.add_argument("--direction", choices=("up", "down", "both"), default="up",
                     help="which change is anomalous: a rise (latency, the default), a fall, or either")
    det.add_argument("--probes", action="store_true",
                     help="every row is one probe, as the daemon's own series are, and rows without a value "
                          "(failed probes) are skipped (default: a row spanning k probe intervals, e.g. an "
                          "hourly mean, is an aggregate of k probes)")
    det.add_argument("--time-column", default="timestamp", metavar="NAME",
                     help="the column of timestamps (default: timestamp; `export`'s: started_at)")
    det.add_argument("--value-column", default="value", metavar="NAME",
                     help="the column of values (default: value; from `export`: ttft, e2e, ...)")
    det.add_argument("--out", metavar="DIR", help="write DIR/<input file name> per input (default: stdout)")
    det.add_argument("files", nargs="+", metavar="FILE", help="CSV with `timestamp` and `value` columns, one series per file")
    det.set_defaults(func=cmd_detect)

    try:
        from daemon.alerts_command import add_commands
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
