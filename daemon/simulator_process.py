"""The bundled simulator as a child process (its timing stays out of our event loop)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from daemon.config import SimulatorConfig


class SimulatorStartError(RuntimeError):
    pass


@asynccontextmanager
async def simulator_process(cfg: SimulatorConfig, start_timeout: float = 20.0) -> AsyncIterator[str]:
    """Start `python -m probes.simulator`, yield its base URL, stop it on exit."""
    # stdin stays a pipe we never write: when this process dies, however, it closes and
    # the simulator exits with it (no orphan holding the port).
    cmd = [sys.executable, "-m", "probes.simulator", "--host", cfg.host, "--port", str(cfg.port), "--exit-with-parent"]
    if cfg.scenario:
        cmd += ["--scenario", cfg.scenario]
    proc = await asyncio.create_subprocess_exec(*cmd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), start_timeout)
        except TimeoutError:
            raise SimulatorStartError(f"simulator did not start within {start_timeout:g}s") from None
        try:
            listening = json.loads(line)["listening"]
        except (ValueError, KeyError, TypeError):
            raise SimulatorStartError(f"simulator did not start (exit code {proc.returncode})") from None
        yield f"http://{listening}"
    finally:
        if proc.returncode is None:
            if proc.stdin is not None:
                proc.stdin.close()  # EOF: the simulator's signal to stop (it ignores SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                proc.kill()
                await proc.wait()
