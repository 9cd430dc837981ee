"""systemd's notify protocol (sd_notify(3)): READY, RELOADING, STOPPING and the watchdog.

Written here rather than imported: the protocol is one datagram to the AF_UNIX socket in
$NOTIFY_SOCKET, and the Python bindings need libsystemd (systemd-python) or are unmaintained
(sdnotify, last release 2018). Without $NOTIFY_SOCKET (not under systemd) every call is a no-op.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time

import structlog

log = structlog.get_logger("llm_vitals.systemd")


class Notifier:
    def __init__(self, env: dict[str, str] | None = None) -> None:
        env = dict(os.environ) if env is None else env
        addr = env.get("NOTIFY_SOCKET", "")
        # "@name" is the abstract namespace (a leading NUL byte).
        self._addr = "\0" + addr[1:] if addr.startswith("@") else addr
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.watchdog_interval = int(usec) / 1e6 / 2 if usec.isdigit() and int(usec) > 0 and mine else None

    @property
    def enabled(self) -> bool:
        return bool(self._addr)

    def send(self, *fields: str) -> None:
        if not self._addr:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                s.connect(self._addr)
                s.sendall("\n".join(fields).encode())
        except OSError as exc:  # systemd gone or the socket not ours: never fatal
            log.warning("sd_notify_failed", error=exc.strerror or str(exc))

    def ready(self, status: str = "") -> None:
        self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def reloading(self) -> None:
        # MONOTONIC_USEC lets systemd (253+) match the reload to this notification.
        self.send("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    async def watchdog(self) -> None:
        """Ping from the event loop at half of WatchdogSec: a loop stuck longer than
        WatchdogSec stops the pings and systemd restarts the service."""
        if self.watchdog_interval is None:
            return
        while True:
            self.send("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_interval)
