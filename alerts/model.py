"""What flows through alerting: a rule's finding per target, an alert, a notification."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from prometheus_client import Counter, Gauge


def fingerprint(rule: str, labels: dict[str, str]) -> str:
    text = rule + "\x00" + "\x00".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule evaluated on one target: is the condition true now, and how bad."""

    rule: str
    labels: dict[str, str]  # target labels + rule labels (severity, ...)
    active: bool
    value: float | None = None
    summary: str = ""  # what and how bad, e.g. "ttft p95 over 5m = 3.1 s > 2 s (baseline 0.4 s)"
    reason: str | None = None  # the failure reason (last error), when there is one


@dataclass
class Alert:
    """The state of one fingerprint (rule + labels). Persisted across restarts."""

    rule: str
    labels: dict[str, str]
    state: str = "inactive"  # inactive · pending · firing
    pending_since: float | None = None
    firing_since: float | None = None
    healthy: int = 0  # healthy evaluations in a row while firing (hysteresis)
    value: float | None = None
    summary: str = ""
    reason: str | None = None
    notified: bool = False  # its firing was sent (not silenced): only then is a resolve sent
    runbook_url: str | None = None  # alerts.runbook_url for its rule, sent with every notification

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.rule, self.labels)

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "page")

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("rule", "labels", "state", "pending_since", "firing_since",
                                              "healthy", "value", "summary", "reason", "notified", "runbook_url")}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Alert:
        return cls(**{k: d[k] for k in ("rule", "labels", "state", "pending_since", "firing_since", "healthy",
                                        "value", "summary", "reason", "notified", "runbook_url") if k in d})


@dataclass(frozen=True)
class Event:
    """A transition worth telling someone about."""

    kind: str  # firing · resolved · reminder
    alert: Alert
    at: float
    duration: float | None = None  # resolved: how long it lasted


@dataclass
class Notification:
    """One message to one receiver: a group of alerts (e.g. all of one provider)."""

    receiver: str
    group: dict[str, str]
    events: list[Event] = field(default_factory=list)
    thread_key: str = ""  # stable per group incident (Slack threads, Alertmanager dedup)
    test: bool = False
    final: bool = False  # the incident's last message: nothing of the group fires any more

    def __post_init__(self) -> None:
        if self.test and not self.events:
            # A test carries one synthetic alert, so event-based channels (Alertmanager) get something.
            import time as _time

            now = _time.time()
            a = Alert("llm-vitals-test", {"severity": "none", "test": "true"}, state="firing", firing_since=now,
                      summary="test notification from llm-vitals")
            self.events = [Event("firing", a, now)]

    @property
    def status(self) -> str:
        return "firing" if any(e.kind != "resolved" for e in self.events) else "resolved"

    def title(self) -> str:
        if self.test:
            return "[TEST] llm-vitals test notification"
        where = ", ".join(f"{k}={v}" for k, v in self.group.items()) or "all targets"
        firing = [e for e in self.events if e.kind != "resolved"]
        if firing:
            rules = sorted({e.alert.rule for e in firing})
            return f"[FIRING:{len(firing)}] {', '.join(rules)} ({where})"
        return f"[RESOLVED] {', '.join(sorted({e.alert.rule for e in self.events}))} ({where})"

    def lines(self) -> list[str]:
        from datetime import UTC, datetime

        out = []
        for e in self.events:
            a = e.alert
            target = "/".join(a.labels.get(k, "") for k in ("provider", "model", "probe") if a.labels.get(k))
            region = a.labels.get("region", "")
            if e.kind == "resolved":
                lasted = f" after {_human(e.duration)}" if e.duration is not None else ""
                out.append(f"RESOLVED {a.rule} on {target} [{region}]{lasted}")
                continue
            since = datetime.fromtimestamp(a.firing_since or e.at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            line = f"{'REMINDER ' if e.kind == 'reminder' else ''}{a.rule} on {target} [{region}]: {a.summary} (since {since})"
            if a.reason:
                line += f" — last failure: {a.reason}"
            if a.runbook_url:
                line += f" — runbook: {a.runbook_url}"
            out.append(line)
        return out

    def text(self) -> str:
        if self.test:
            return "This is a test notification from llm-vitals. If you can read this, the receiver works."
        return "\n".join(self.lines())


def _human(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


@dataclass(frozen=True, slots=True)
class AlertTransition:
    """An alert changing state; written to InfluxDB measurement `alert` and the store."""

    at: datetime  # UTC
    rule: str
    fingerprint: str
    state: str  # pending · firing · resolved
    severity: str
    labels: dict[str, str] = field(default_factory=dict)
    value: float | None = None
    summary: str = ""


class AlertMetrics(Protocol):
    """The series the engine keeps up to date (the daemon's Metrics has them): the alerts
    room depends on this shape, not on the daemon that exports it."""

    alerts_firing: Gauge
    notifications: Counter
    queue_depth: Gauge
