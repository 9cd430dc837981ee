"""systemd unit (deploy/systemd): systemd-analyze verify, and the hardening the issue asks for."""

from __future__ import annotations

import configparser
import itertools
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.config import load_settings
from tests.factories import REPO

UNIT = REPO / "deploy" / "systemd" / "llm-vitals.service"
EXEC = "/opt/llm-vitals/bin/llm-vitals"


def unit() -> dict[str, list[str]]:
    """Directive -> values (systemd allows repeats, configparser doesn't)."""
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            k, _, v = line.partition("=")
            out.setdefault(k, []).append(v)
    return out


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze not installed")
    # verify checks that ExecStart exists: point it at this venv's entry point
    entry = Path(sys.executable).parent / "llm-vitals"
    if not entry.exists():
        pytest.skip("llm-vitals entry point not installed in this venv (pip install -e .)")
    copy = tmp_path / "llm-vitals.service"
    copy.write_text(UNIT.read_text().replace(EXEC, str(entry)))
    r = subprocess.run([tool, "verify", "--man=no", str(copy)], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "", r.stderr  # unknown or unparsable directives are only warnings


def test_unit_is_hardened_restarts_and_reloads() -> None:
    u = unit()
    one = {k: v[-1] for k, v in u.items()}
    assert one["ExecStart"] == f"{EXEC} run -c /etc/llm-vitals/config.yaml"
    assert one["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert one["Restart"] == "on-failure"
    assert one["RestartPreventExitStatus"] == "2"
    assert one["Type"] == "notify" and one["NotifyAccess"] == "main" and one["WatchdogSec"] == "30s"
    for k, v in {"DynamicUser": "yes", "StateDirectory": "llm-vitals", "ProtectSystem": "strict",
                 "NoNewPrivileges": "yes", "CapabilityBoundingSet": "", "ProtectHome": "yes",
                 "PrivateTmp": "yes", "PrivateDevices": "yes"}.items():
        assert one.get(k) == v, k
    creds = [c.split(":", 1) for c in u["LoadCredential"]]
    assert all(path.startswith("/etc/llm-vitals/credentials/") for _, path in creds)
    # the stop timeout covers the daemon's 20 s drain
    assert int(one["TimeoutStopSec"].rstrip("s")) > 20
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.read_string("\n".join(ln for ln in UNIT.read_text().splitlines() if not ln.startswith("SystemCallFilter")))
    assert cp.sections() == ["Unit", "Service", "Install"]


def test_example_config_uses_the_units_state_and_credentials() -> None:
    s = load_settings(REPO / "deploy" / "systemd" / "config.example.yaml")
    assert s.storage.path.startswith("/var/lib/llm-vitals/")
    names = {c.split(":", 1)[0] for c in unit()["LoadCredential"]}
    for p in s.providers:
        assert p.api_key_file and p.api_key_file.startswith("/run/credentials/llm-vitals.service/")
        assert p.api_key_file.rsplit("/", 1)[1] in names


def test_daemon_speaks_sd_notify_ready_watchdog_reload_and_stopping(daemon_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """What Type=notify and WatchdogSec rely on, over a real notify socket (as systemd gives)."""
    import signal
    import socket
    import time

    import httpx

    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.2)
    got: list[tuple[float, str]] = []

    def drain(until: float) -> None:
        while time.monotonic() < until:
            try:
                got.append((time.monotonic(), sock.recv(4096).decode()))
            except TimeoutError:
                pass

    cfg = ('http: {listen: "127.0.0.1:{port}"}\nstorage: {path: "{tmp}/s.db"}\nsimulator: {enabled: true}\n'
           'defaults: {interval: 1s}\nalerts: {enabled: false}\nproviders:\n'
           '  - {name: sim, kind: openai_compatible, base_url: "{simulator}/v1", models: [m]}\n')
    d = daemon_factory(cfg, env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "1000000"})
    try:
        drain(time.monotonic() + 12)
        ready = [t for t, m in got if "READY=1" in m]
        assert ready, got
        assert httpx.get(d.url + "/healthz", timeout=5).status_code == 200  # READY came with HTTP up
        pings = [t for t, m in got if m == "WATCHDOG=1" and t > ready[0]]
        assert len(pings) >= 3 and max(b - a for a, b in itertools.pairwise(pings)) < 1.0, pings
        got.clear()
        d.proc.send_signal(signal.SIGHUP)
        drain(time.monotonic() + 3)
        msgs = [m for _, m in got]
        reload_at = next(i for i, m in enumerate(msgs) if m.startswith("RELOADING=1"))
        assert "MONOTONIC_USEC=" in msgs[reload_at] and any("READY=1" in m for m in msgs[reload_at:]), msgs
        got.clear()
        d.proc.send_signal(signal.SIGTERM)
        drain(time.monotonic() + 3)
        assert any(m == "STOPPING=1" for _, m in got), got
    finally:
        d.stop()
        sock.close()
