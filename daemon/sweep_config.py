"""`sweeps:` in the config: capacity sweeps the daemon runs on a cron schedule.

The schedule is standard crontab (5 fields, as `alerts.maintenance` reads it), run by
apscheduler 3's CronTrigger. Two places where apscheduler 3 differs from crontab are
closed here, so a sweep and the maintenance window written with the same expression fire
together: apscheduler counts weekday 0 as Monday (crontab: Sunday; `*/2` likewise), so the
day-of-week field is expanded by croniter and handed over as names; and crontab fires when
*either* a restricted day of month or a restricted day of week matches where apscheduler
needs both, so restricting both is refused instead of silently meaning something else.
"""

from __future__ import annotations

from datetime import tzinfo
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from croniter import croniter
from pydantic import Field, field_validator, model_validator

from core.durations import Duration, check_timezone
from core.strict import Strict

_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
MAX_LEVELS = 16
MAX_PROMPT_SIZES = 8
MAX_CONCURRENCY = 1024


def _field(values: list[Any]) -> str:
    return "*" if values == ["*"] else ",".join(str(v) for v in values)


def cron_fields(expr: str) -> dict[str, str]:
    """apscheduler CronTrigger arguments with crontab's meaning (raises ValueError)."""
    if not isinstance(expr, str) or len(expr.split()) != 5:
        raise ValueError(f"expected 5 cron fields (minute hour day-of-month month day-of-week), e.g. "
                         f"'0 3 * * *', got {expr!r}")
    try:
        fields, nth = croniter.expand(expr)
    except Exception as exc:  # croniter raises its own error types (CroniterBadCronError...)
        raise ValueError(f"invalid cron expression {expr!r}: {exc}") from None
    if nth:
        raise ValueError(f"cron {expr!r}: `#` (nth weekday) is not supported")
    minute, hour, dom, month, dow = fields
    for values in fields:
        if values != ["*"] and not all(isinstance(v, int) for v in values):
            raise ValueError(f"cron {expr!r}: only numbers, names, ranges, lists and steps are supported")
    if dom != ["*"] and dow != ["*"]:
        raise ValueError(f"cron {expr!r} restricts both the day of month and the day of week (crontab runs on "
                         "either, apscheduler only on both): restrict one of them")
    days = "*" if dow == ["*"] else ",".join(_DAYS[int(d) % 7] for d in sorted({int(d) % 7 for d in dow}))
    return {"minute": _field(minute), "hour": _field(hour), "day": _field(dom), "month": _field(month),
            "day_of_week": days}


def cron_trigger(expr: str, timezone: str | tzinfo = "UTC") -> CronTrigger:
    tz = ZoneInfo(timezone) if isinstance(timezone, str) else timezone
    return CronTrigger(timezone=tz, **cron_fields(expr))  # type: ignore[arg-type]


class SweepConfig(Strict):
    """A capacity sweep the daemon runs on a schedule (the same sweep as `llm-vitals sweep`)."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    """Names the sweep in metrics (`sweep` label), InfluxDB points, the store and the status page."""
    target: str = Field(pattern=r"^[^/\s]+/[^/\s]+(/[^/\s]+)?$")
    """PROVIDER/MODEL[/PROBE] of a configured target (PROVIDER/MODEL: its first probe profile)."""
    schedule: str
    """When it runs, a 5-field crontab expression: `0 3 * * *` is nightly at 03:00 (weekday 0 and 7
    are Sunday, as in crontab; restrict the day of month or the day of week, not both)."""
    timezone: str = "UTC"
    """The IANA time zone `schedule` is read in (e.g. `Europe/Paris`)."""
    concurrency: list[int] = Field([1, 2, 4, 8, 16, 32], min_length=1, max_length=MAX_LEVELS)
    """Streams kept in flight, one level each, in increasing order."""
    prompt_tokens: list[int] | None = Field(None, min_length=1, max_length=MAX_PROMPT_SIZES)
    """Prompt sizes in tokens, each swept over every level (unset: the probe's own prompt)."""
    requests: int | None = Field(None, ge=1, le=100_000)
    """Requests per level (default: 4 x concurrency, at least 10)."""
    duration: Duration | None = None
    """Time per level instead of a request count, e.g. `30s`."""
    max_delay: Duration = 3600
    """A run waiting behind another sweep starts at most this late; later it is skipped (a
    nightly off-hours sweep must not spill into the day)."""

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str) -> str:
        cron_fields(v)
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        return check_timezone(v)

    @field_validator("concurrency")
    @classmethod
    def _levels(cls, v: list[int]) -> list[int]:
        if any(c < 1 or c > MAX_CONCURRENCY for c in v):
            raise ValueError(f"each level must be 1..{MAX_CONCURRENCY} streams")
        if any(b <= a for a, b in pairwise(v)):
            raise ValueError("levels must be increasing (the saturation rule compares each level with the one before)")
        return v

    @field_validator("prompt_tokens")
    @classmethod
    def _sizes(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (any(p < 1 for p in v) or len(set(v)) != len(v)):
            raise ValueError("prompt sizes must be distinct numbers of at least 1")
        return v

    @model_validator(mode="after")
    def _how_long(self) -> SweepConfig:
        if self.requests is not None and self.duration is not None:
            raise ValueError("set `requests` or `duration`, not both")
        if self.duration is not None and self.duration <= 0:
            raise ValueError("duration must be more than 0")
        return self

    def trigger(self) -> CronTrigger:
        return cron_trigger(self.schedule, self.timezone)
