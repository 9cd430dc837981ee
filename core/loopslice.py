"""Long loop-bound work in slices, so probes keep reading their sockets meanwhile.

Work that must see the loop's live state (detector series, alert histories) cannot move
to a thread; at 1,000 targets one pass is 0.1–0.6 s of CPU. Left whole it stalls every
probe's reads, and their kernel stamps merge (probes/netstream.py). A LoopSlice hands the
loop back once its budget of CPU has run since the last hand-back.
"""

from __future__ import annotations

import asyncio
import time

SLICE = 0.005  # seconds of work per loop step


class LoopSlice:
    def __init__(self, budget: float = SLICE) -> None:
        self._budget = budget
        self._deadline = time.perf_counter() + budget

    async def pause(self) -> None:
        """Yield to the loop when this slice's budget is spent (else return at once)."""
        if time.perf_counter() >= self._deadline:
            await asyncio.sleep(0)
            self._deadline = time.perf_counter() + self._budget
