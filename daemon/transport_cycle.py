"""A closed asyncio socket connection is freed by reference counting, on every Python we run.

On Python 3.11 asyncio's `_SelectorSocketTransport` keeps a bound method of itself
(`_read_ready_cb`; 3.12 also `_write_ready`) after its connection is lost: the transport,
its socket and their dicts form a reference cycle that only the cyclic GC frees. Python
3.12 drops them in `close()`, not when a connection is aborted or fails. For the daemon the cycle is a leak: the GC policy freezes the heap (the
permanent generation is never collected), so every connection open at a freeze and
closed later (a scrape, a health check, a notifier's request) stayed in memory for good.
Found with a census of the cyclic garbage left once the heap was unfrozen: after 40 s
of a fresh-connection scrape every 0.5 s, 13 transports with their socket, TransportSocket,
dict and bound method each, and nothing else (our probe connections have no cycle:
tests/probes/test_clients.py).

`install()` drops them once the connection is lost (whatever closed it: `close`,
`abort` or an error), after the protocol has been told, when the transport can no longer
read. Idempotent; a Python whose transport lacks the attribute is left as it is.
"""

from __future__ import annotations

from asyncio import selector_events
from typing import Any

_MARK = "_llm_vitals_drops_read_cb"


def install() -> bool:
    """True when closed transports now break their own cycle (or already did)."""
    cls: Any = getattr(selector_events, "_SelectorSocketTransport", None)
    if cls is None or not hasattr(cls, "_call_connection_lost"):
        return False
    if getattr(cls, _MARK, False):
        return True
    lost = cls._call_connection_lost

    def _call_connection_lost(self: Any, exc: BaseException | None) -> None:
        try:
            lost(self, exc)
        finally:
            # the bound methods that refer back to the transport (the class keeps its own)
            self._read_ready_cb = None
            self.__dict__.pop("_write_ready", None)

    cls._call_connection_lost = _call_connection_lost
    setattr(cls, _MARK, True)
    return True
