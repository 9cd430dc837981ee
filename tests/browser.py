"""Headless Chromium for page tests: load a URL, let its scripts run, keep a screenshot and
return the DOM as it stands after them, with what the browser logged to its console."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.servers import need

# Virtual time runs the page's timers and fetches to completion before the DOM is dumped.
BUDGET_MS = 8000


@dataclass
class Rendered:
    dom: str
    console: str  # chromium's log, console messages included

    def attr(self, name: str) -> str | None:
        m = re.search(rf'<html[^>]*\s{name}="([^"]*)"', self.dom)
        return m.group(1) if m else None

    def errors(self) -> list[str]:
        """Script errors: what the page's own window.onerror recorded, and every console
        message chromium logged (its log does not say console.error from console.log, and
        the pages log nothing of their own)."""
        out = [e for e in (self.attr("data-errors") or "").split("\n") if e.strip()]
        out += [line for line in self.console.splitlines() if ":CONSOLE" in line]
        return out

    def canvases(self) -> list[tuple[int, int]]:
        return [(int(w), int(h)) for w, h in re.findall(r'<canvas width="(\d+)" height="(\d+)"', self.dom)]


def _run(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def render(url: str, workdir: Path, screenshot: Path | None = None, size: tuple[int, int] = (1400, 1000)) -> Rendered:
    chromium = need("chromium")
    workdir.mkdir(parents=True, exist_ok=True)
    common = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
              f"--user-data-dir={workdir / 'chromium-profile'}", f"--window-size={size[0]},{size[1]}",
              f"--virtual-time-budget={BUDGET_MS}", "--enable-logging=stderr", "--v=0"]
    if screenshot is not None:
        shot = _run([*common, f"--screenshot={screenshot}", url])
        assert screenshot.is_file() and screenshot.stat().st_size > 0, shot.stderr[-2000:]
    dom = _run([*common, "--dump-dom", url])
    assert dom.returncode == 0, dom.stderr[-2000:]
    return Rendered(dom.stdout, dom.stderr)
