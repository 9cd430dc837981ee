"""The seam between the collector and every sink (Prometheus, SQLite, InfluxDB, alerts).

A sink receives results through `observe` (daemon/pipeline.py's Consumer), which must return at once: a slow sink keeps
its own bounded queue and measures itself, it never holds up the probe path (docs/architecture.md §1).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from alerts.model import AlertTransition
from core.result import ProbeResult


@runtime_checkable
class Sink(Protocol):
    name: str

    async def start(self) -> None: ...

    def observe(self, result: ProbeResult) -> None:
        """Accept one result without blocking (enqueue; drop-oldest when full, counted)."""
        ...

    def submit_alert(self, transition: AlertTransition) -> None: ...

    def submit_sweep(self, name: str, target: str, region: str, started_at: float, outcome: str,
                     levels: list[dict[str, Any]], saturation: dict[str, Any] | None) -> None:
        """A scheduled sweep's levels (sinks without a place for them ignore it)."""
        ...

    async def stop(self, deadline: float) -> None:
        """Flush what can be flushed within `deadline` seconds, persist the rest."""
        ...

    def depth(self) -> int:
        """Results or points waiting in the sink's own queue (llm_vitals_queue_depth)."""
        ...

    def health(self) -> dict[str, Any]:
        """{"ok": bool, ...details} for /readyz and /api/v1/status."""
        ...
