"""The notifier seam: one small class per channel, one registry line (alerts/notifiers/__init__.py)."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from alerts.model import Notification

__all__ = ["DeliveryError", "Notifier"]


class DeliveryError(Exception):
    """The send failed; `retry_after` (seconds) when the other side said when to retry."""

    def __init__(self, message: str, retry_after: float | None = None, permanent: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent


class Notifier(ABC):
    kind: str
    # A channel that forgets a firing alert unless told again (Alertmanager drops one whose
    # endsAt passes) re-sends every firing alert of a group each `resend_interval` seconds.
    resends_while_firing: ClassVar[bool] = False

    def __init__(self, name: str, cfg: Any) -> None:
        self.name = name
        self.cfg = cfg

    @abstractmethod
    async def send(self, n: Notification) -> None:
        """Deliver or raise DeliveryError. Must respect cfg.timeout."""

    @property
    def resend_interval(self) -> float:
        """Seconds between re-sends while firing; read only when `resends_while_firing`."""
        return math.inf

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
