"""Garbage-collector policy for a daemon whose heap is large and long-lived.

A full CPython collection walks every tracked object. With 1,000 targets (metric
children, sliding windows, detector series) that was up to 700 ms on a 2-core VM: the
event loop stalls, scheduled probes start late and reads queue up behind it. Nearly all
of those objects live as long as their target, so once every target has been probed
(and again after a reload, and every hour as baselines grow) the survivors are moved to
the permanent generation with `gc.freeze()`. After that, at every tick (5 s) that follows
a young collection, the few seconds' worth of objects promoted to the old generation are
checked by a full collection and the survivors frozen too, so no full collection walks the
same objects twice, nor more than a few seconds' worth. Young generations are still
collected as usual, so cyclic garbage is reclaimed; frozen objects are still freed by
reference counting when they go, which holds only for objects in no reference cycle:
a probe leaves none (tests/probes/test_clients.py), and asyncio's own closed connections
are made to leave none (daemon/transport_cycle.py) when the policy is installed.
"""

from __future__ import annotations

import gc
import time

import structlog

from daemon import transport_cycle

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
            # a connection frozen while open and closed later must not stay a cycle
            transport_cycle.install()
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
        if not self._pending and self._last and (self._full_collected or gc.get_count()[2] > 0):
            # Since the last tick, young collections moved objects into the old generation
            # (or a full collection kept some): check just those for cycles now, while
            # they are a few seconds' worth, and freeze what survives. Left to CPython, a
            # full collection came about once a minute and walked everything promoted
            # since: 37-49 ms of loop at 1,000 targets, the largest pause left (and what
            # made a scrape's loop lag miss 20 ms).
            gc.collect(2)
            gc.freeze()
            self._full_collected = False  # ours, just now
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
