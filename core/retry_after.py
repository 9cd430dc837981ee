"""Retry-After (RFC 9110): seconds or an HTTP-date. One parser for the probes, the InfluxDB
sink and the notifiers."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import Any


def retry_after_seconds(value: Any, now: float | None = None) -> float | None:
    """A Retry-After header (seconds or an HTTP-date; a list: its first value) in seconds
    from now; None when absent or unreadable (the caller's own backoff applies)."""
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        return None
    text = str(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    # NaN and inf are floats too: neither is a delay
    return max(seconds, 0.0) if seconds == seconds and seconds != float("inf") else None
