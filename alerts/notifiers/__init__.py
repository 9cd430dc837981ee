"""Notifier registry: every channel, and the `alerts.receivers[]` model derived from it.

A new channel = one module (its ReceiverConfig subclass, with its secrets, and its
Notifier) + one line in NOTIFIERS. The receiver's keys, the list of kinds in its error
message, and the secret checks at load all follow from the registry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, create_model, model_validator

from alerts.notifiers.alertmanager import AlertmanagerNotifier
from alerts.notifiers.base import DeliveryError, Notifier, ReceiverConfig
from alerts.notifiers.email import EmailNotifier
from alerts.notifiers.slack import SlackNotifier
from alerts.notifiers.webhook import WebhookNotifier
from core.strict import Strict

# in this order in the receiver model (docs/configuration.md) and in its error message
NOTIFIERS: dict[str, type[Notifier]] = {cls.kind: cls for cls in (
    SlackNotifier,
    EmailNotifier,
    WebhookNotifier,
    AlertmanagerNotifier,
)}

__all__ = ["NOTIFIERS", "DeliveryError", "Notifier", "Receiver", "ReceiverConfig", "build"]


class ReceiverBase(Strict):
    # the `Receiver` model below adds one optional key per registered kind
    name: str = Field(min_length=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> ReceiverBase:
        kinds = [k for k in NOTIFIERS if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"a receiver needs exactly one of {', '.join(NOTIFIERS)} (got {kinds or 'none'})")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in NOTIFIERS if getattr(self, k) is not None)

    @property
    def channel(self) -> ReceiverConfig:
        """The settings of its one channel (`slack: {...}` etc.)."""
        cfg: ReceiverConfig = getattr(self, self.kind)
        return cfg

    def missing_secrets(self) -> list[str]:
        return self.channel.missing_secrets(f"alerts.receivers.{self.name}.{self.kind}")


if TYPE_CHECKING:
    Receiver = ReceiverBase
else:
    _channels: dict[str, Any] = {kind: (cls.config | None, None) for kind, cls in NOTIFIERS.items()}
    Receiver = create_model("Receiver", __base__=ReceiverBase, __module__=__name__, **_channels)


def build(receiver: ReceiverBase) -> Notifier:
    return NOTIFIERS[receiver.kind](receiver.name, receiver.channel)
