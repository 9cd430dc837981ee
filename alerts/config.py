"""Config models for `alerts:` (docs/architecture.md §8): rules, receivers, routing, silences, maintenance."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Literal

from croniter import croniter
from pydantic import Field, field_validator, model_validator

from alerts.notifiers import Receiver
from core.durations import Duration, check_timezone
from core.strict import Strict

Metric = Literal["ttft", "ttft_content", "e2e", "itl", "tpot", "output_tps"]
Stat = Literal["p50", "p90", "p95", "p99", "mean", "max", "min"]


# The longest window the daemon's in-memory distributions keep (core/aggregator.py WINDOWS).
MAX_THRESHOLD_WINDOW = 3600


class Objective(Strict):
    """SLO for burn-rate rules: availability, or latency ("95% of probes have ttft < 2s")."""

    type: Literal["availability", "latency"] = "availability"
    target: float = Field(0.99, gt=0, lt=1)
    metric: Metric = "ttft"
    threshold: Duration = 2.0  # latency objective: a probe is good when metric < threshold
    # (long, short, burn factor) window pairs; the SRE-workbook defaults.
    page: list[tuple[Duration, Duration, float]] = [(3600, 300, 14.4), (21600, 1800, 6.0)]
    ticket: list[tuple[Duration, Duration, float]] = [(259200, 21600, 1.0)]


class Rule(Strict):
    name: str = Field(min_length=1)
    kind: Literal[
        "threshold", "error_rate", "consecutive_failures", "content_mismatch", "burn_rate", "anomaly", "no_data"
    ]
    metric: Metric | Literal["error"] | None = None  # "error": the detector's error-rate series (anomaly)
    stat: Stat = "p95"
    window: Duration = 300
    op: Literal[">", ">=", "<", "<="] = ">"
    value: float | None = None
    count: int = Field(3, ge=1)  # consecutive_failures / content_mismatch
    min_probes: int = Field(3, ge=1)
    objective: Objective | None = None
    for_: Duration = Field(0, alias="for")
    resolve_after: int = Field(2, ge=1)  # healthy evaluations in a row before resolving
    match: dict[str, str] = {}  # only targets whose labels match
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}

    @model_validator(mode="after")
    def _needs(self) -> Rule:
        if self.kind == "threshold" and (self.metric is None or self.value is None):
            raise ValueError("a threshold rule needs `metric` and `value`")
        if self.kind == "threshold" and self.metric == "error":
            raise ValueError("a threshold rule needs a latency metric; use kind error_rate for errors")
        if self.kind == "threshold" and not 1 <= self.window <= MAX_THRESHOLD_WINDOW:
            raise ValueError(
                f"window {self.window:g}s: a threshold rule evaluates over exactly its window, from 1s up to "
                f"the {MAX_THRESHOLD_WINDOW // 60:g}m of probe history the daemon keeps in memory "
                "(longer windows: the Prometheus rules in deploy/prometheus)")
        if self.kind == "error_rate" and self.value is None:
            raise ValueError("an error_rate rule needs `value` (a fraction, e.g. 0.2)")
        if self.kind == "burn_rate" and self.objective is None:
            raise ValueError("a burn_rate rule needs `objective`")
        return self


class Escalation(Strict):
    after: Duration
    receiver: str


class Route(Strict):
    receiver: str | None = None
    match: dict[str, str] = {}
    match_re: dict[str, str] = {}
    group_by: list[str] = ["provider"]
    group_wait: Duration = 10
    group_interval: Duration = 300
    repeat_interval: Duration = 14400
    repeat_max: int | None = None  # cap on reminders per incident
    escalate: Escalation | None = None
    continue_: bool = Field(False, alias="continue")
    routes: list[Route] = []

    # Checked at load: a bad pattern would otherwise raise whenever an alert is routed (no page).
    @field_validator("match_re")
    @classmethod
    def _patterns(cls, v: dict[str, str]) -> dict[str, str]:
        for k, p in v.items():
            try:
                re.compile(p)
            except re.error as exc:
                raise ValueError(f"match_re.{k}: invalid regular expression {p!r}: {exc}") from None
        return v


class Silence(Strict):
    id: str | None = None
    match: dict[str, str] = Field(min_length=1)
    starts_at: datetime | None = None
    ends_at: datetime
    comment: str = ""
    created_by: str = "config"

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        # A time written without an offset is UTC, not the host's local time.
        return v.replace(tzinfo=UTC) if v is not None and v.tzinfo is None else v


class Maintenance(Strict):
    match: dict[str, str] = {}
    cron: str
    duration: Duration
    timezone: str = "UTC"

    # Checked at load: a bad window would otherwise fail every evaluation (no alerts at all).
    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        if not croniter.is_valid(v):
            raise ValueError(f"invalid cron expression {v!r} (e.g. '0 3 * * SUN')")
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        return check_timezone(v)


class Inhibit(Strict):
    source_match: dict[str, str]
    target_match: dict[str, str] = {}
    equal: list[str] = ["provider"]


class AlertsConfig(Strict):
    enabled: bool = True
    evaluation_interval: Duration = 15
    rules: list[Rule] = []
    receivers: list[Receiver] = []  # its model: the notifier registry's (alerts/notifiers/__init__.py)
    route: Route | None = None
    silences: list[Silence] = []
    maintenance: list[Maintenance] = []
    inhibit: list[Inhibit] = []
    use_default_rules: bool = True
    runbook_url: str | None = None
    """Runbook link for every alert on the status page; `{rule}` is replaced by the rule's name
    (e.g. `https://wiki.example.com/llm-vitals/runbook#{rule}`)."""

    @field_validator("runbook_url")
    @classmethod
    def _runbook(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL (may hold {{rule}}), got {v!r}")
        return v

    def runbook_for(self, rule: str) -> str | None:
        from urllib.parse import quote

        return None if self.runbook_url is None else self.runbook_url.replace("{rule}", quote(rule, safe=""))

    @model_validator(mode="after")
    def _refs(self) -> AlertsConfig:
        names = [r.name for r in self.receivers]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate receiver name(s): {', '.join(sorted(dup))}")
        rnames = [r.name for r in self.rules]
        dup = {n for n in rnames if rnames.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate rule name(s): {', '.join(sorted(dup))}")

        def walk(route: Route, path: str) -> None:
            if route.receiver is not None and route.receiver not in names:
                raise ValueError(f"{path}.receiver: unknown receiver {route.receiver!r}")
            if route.escalate is not None and route.escalate.receiver not in names:
                raise ValueError(f"{path}.escalate.receiver: unknown receiver {route.escalate.receiver!r}")
            for i, sub in enumerate(route.routes):
                walk(sub, f"{path}.routes[{i}]")

        if self.route is not None:
            if self.route.receiver is None:
                raise ValueError("route.receiver: the root route needs a receiver")
            walk(self.route, "route")
        return self
