"""Notifier registry: receiver config key → class. A new channel = one file + one line."""

from __future__ import annotations

from alerts.config import Receiver
from alerts.notifiers.alertmanager import AlertmanagerNotifier
from alerts.notifiers.base import DeliveryError, Notifier
from alerts.notifiers.email import EmailNotifier
from alerts.notifiers.slack import SlackNotifier
from alerts.notifiers.webhook import WebhookNotifier

NOTIFIERS: dict[str, type[Notifier]] = {
    "slack": SlackNotifier,
    "email": EmailNotifier,
    "webhook": WebhookNotifier,
    "alertmanager": AlertmanagerNotifier,
}

__all__ = ["NOTIFIERS", "DeliveryError", "Notifier", "build"]


def build(receiver: Receiver) -> Notifier:
    for kind, cls in NOTIFIERS.items():
        cfg = getattr(receiver, kind, None)
        if cfg is not None:
            return cls(receiver.name, cfg)
    raise ValueError(f"receiver {receiver.name}: no channel configured")
