"""The notifier seam: one small class per channel, one registry line (alerts/notifiers/__init__.py)."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from email.utils import parsedate_to_datetime
from typing import Any

from alerts.model import Notification


class DeliveryError(Exception):
    """The send failed; `retry_after` (seconds) when the other side said when to retry."""

    def __init__(self, message: str, retry_after: float | None = None, permanent: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent


def retry_after_seconds(value: Any, now: float | None = None) -> float | None:
    """A Retry-After header (seconds or an HTTP-date, RFC 9110; a list: its first value) in
    seconds from now; None when absent or unreadable (the sender's own backoff applies)."""
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
    return max(seconds, 0.0) if seconds == seconds else None


class Notifier(ABC):
    kind: str

    def __init__(self, name: str, cfg: Any) -> None:
        self.name = name
        self.cfg = cfg

    @abstractmethod
    async def send(self, n: Notification) -> None:
        """Deliver or raise DeliveryError. Must respect cfg.timeout."""

    def validate(self) -> None:
        """Raise ValueError (secrets resolved now) when the receiver cannot work."""
        return None

    def state(self) -> dict[str, Any] | None:
        """What the channel must remember across a restart (JSON), saved with the alert
        state; None when it keeps nothing."""
        return None

    def restore(self, state: dict[str, Any]) -> None:
        """Take back what `state` returned before the restart."""
        return None
