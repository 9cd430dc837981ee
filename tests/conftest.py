"""Shared test helpers: free ports, waiting for URLs, the daemon as a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0, ok: tuple[int, ...] = (200,), proc: subprocess.Popen[bytes] | None = None) -> httpx.Response:
    deadline = time.monotonic() + timeout
    last: Exception | str = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} while waiting for {url}")
        try:
            r = httpx.get(url, timeout=2)
            if r.status_code in ok:
                return r
            last = f"HTTP {r.status_code}: {r.text[:200]}"
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout}s: {last}")


class DaemonProcess:
    def __init__(self, config: Path, port: int, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = config.with_suffix(".log")
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        full_env = {**os.environ, **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daemon.cli", "run", "-c", str(config)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=REPO,
        )

    def wait_ready(self, timeout: float = 40.0) -> None:
        try:
            wait_http(self.url + "/readyz", timeout, proc=self.proc)
        except Exception as exc:
            raise AssertionError(f"{exc}\n--- daemon log ---\n{self.logs()[-4000:]}") from None

    def logs(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = 15, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return int(self.proc.returncode)


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[callable]:  # type: ignore[valid-type]
    started: list[DaemonProcess] = []

    def start(config_text: str, env: dict[str, str] | None = None, name: str = "vitals") -> DaemonProcess:
        port = free_port()
        text = config_text.replace("{port}", str(port)).replace("{tmp}", str(tmp_path))
        cfg = tmp_path / f"{name}.yaml"
        cfg.write_text(text)
        d = DaemonProcess(cfg, port, env)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop(9 if d.proc.poll() is None else 15, timeout=5)


@pytest.fixture(autouse=True)
def _created_switch_restored() -> Iterator[None]:
    """An in-process Daemon turns prometheus_client's `_created` samples off for the whole
    process (Daemon.__init__); later tests get the switch as it was."""
    import prometheus_client.metrics as pm

    was = pm._use_created  # type: ignore[attr-defined]
    yield
    pm._use_created = was  # type: ignore[attr-defined]
