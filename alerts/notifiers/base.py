"""The notifier seam: one module per channel, holding its receiver settings (a
ReceiverConfig) and its Notifier, plus one registry line (alerts/notifiers/__init__.py)."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from alerts.model import Notification
from core.secrets import MissingSecret, read_secret
from core.strict import Strict

__all__ = ["DeliveryError", "Notifier", "ReceiverConfig"]


class ReceiverConfig(Strict):
    """A channel's settings, the value of `alerts.receivers[].<kind>`."""

    # The secrets it references, each a `<name>_env` / `<name>_file` field pair: checked at
    # load (`llm-vitals check`), so a missing one is a config error, not a page lost later.
    secrets: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        for name in cls.secrets:  # a typo here would silently skip the check
            missing = {f"{name}_env", f"{name}_file"} - cls.model_fields.keys()
            if missing:
                raise TypeError(f"{cls.__name__}.secrets names {name!r}, but has no {', '.join(sorted(missing))}")

    def secret_urls(self) -> list[str]:
        """URLs that may carry a `user:password@` (a secret like the `*_env` ones)."""
        return []

    def missing_secrets(self, where: str) -> list[str]:
        """Every referenced secret that cannot be read, as 'where.name: reason' lines."""
        problems = []
        for name in self.secrets:
            try:
                read_secret(getattr(self, f"{name}_env"), getattr(self, f"{name}_file"), f"{where}.{name}")
            except MissingSecret as exc:
                problems.append(str(exc))
        return problems


class DeliveryError(Exception):
    """The send failed; `retry_after` (seconds) when the other side said when to retry."""

    def __init__(self, message: str, retry_after: float | None = None, permanent: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent


class Notifier(ABC):
    kind: ClassVar[str]  # the key under `alerts.receivers[]`, e.g. "slack"
    config: ClassVar[type[ReceiverConfig]]  # the model of that key's settings
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
