"""Garbage-collector policy for a daemon whose heap is large and long-lived.

A full CPython collection walks every tracked object. With 1,000 targets (metric
children, sliding windows, detector series) that was up to 700 ms on a 2-core VM: the
event loop stalls, scheduled probes start late and reads queue up behind it. Nearly all
of those objects live as long as their target, so once every target has been probed
(and again after a reload, and every hour as baselines grow) the survivors are moved to
the permanent generation with `gc.freeze()`. Survivors of any later full collection are
long-lived by definition and are frozen too (at the next tick), so no full collection
walks the same objects twice. Young generations are still collected as usual, so the
cyclic garbage probes make is reclaimed; frozen objects are still freed by reference
counting when a target goes away.
"""

from __future__ import annotations

import gc
import time

import structlog

log = structlog.get_logger("llm_vitals.gc")

REFREEZE_EVERY = 3600.0


class GcPolicy:
    def __init__(self) -> None:
        self._last = 0.0
        self._pending = True  # freeze once the current targets have all been probed
        self._full_collected = False
        self._installed = False

    def install(self) -> None:
        if not self._installed:
            gc.callbacks.append(self._on_gc)
            self._installed = True

    def uninstall(self) -> None:
        if self._installed:
            gc.callbacks.remove(self._on_gc)
            self._installed = False

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info.get("generation") == 2:
            self._full_collected = True

    def targets_changed(self) -> None:
        self._pending = True

    def tick(self, all_probed: bool, now: float | None = None) -> bool:
        """Freeze when due; True when it did."""
        now = time.monotonic() if now is None else now
        if self._full_collected and not self._pending:
            self._full_collected = False
            gc.freeze()  # what the full collection kept is long-lived: never walk it again
            return True
        due = (self._pending and all_probed) or (self._last and now - self._last >= REFREEZE_EVERY)
        if not due:
            return False
        t0 = time.perf_counter()
        gc.collect(1)  # young garbage first (cheap); the old generation is not walked
        gc.freeze()
        self._pending = False
        self._full_collected = False
        self._last = now
        log.info("gc_frozen", objects=gc.get_freeze_count(), took_ms=round((time.perf_counter() - t0) * 1000, 1))
        return True
