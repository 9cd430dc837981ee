"""Silences: the active list (from the config, plus the store's from the CLI and the API),
adding and expiring stored ones, and the bounds on a silence's duration."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from alerts.config import Silence
from core.durations import format_duration, parse_duration
from core.store import Store

SILENCES_KEY = "alerts:silences"
# A silence is a maintenance window, not a way to switch an alert off for good (that is
# the rule's job); the bound also keeps every end time a date that JSON and datetime hold.
MAX_SILENCE_SECONDS = 90 * 86400


def active(configured: Sequence[Silence], store: Store, now: float) -> list[dict[str, Any]]:
    """Every silence not yet ended: the configured ones, then the stored ones, with their
    times also in RFC 3339 for people."""
    from_config = [{"id": s.id or f"config-{i}", "match": s.match,
                    "starts_at": s.starts_at.timestamp() if s.starts_at else 0.0, "ends_at": s.ends_at.timestamp(),
                    "comment": s.comment, "created_by": s.created_by} for i, s in enumerate(configured)]
    stored = [_bounded(s, now) for s in store.get_state(SILENCES_KEY, []) if s["ends_at"] > now]
    return [{**si, "starts": rfc3339(si["starts_at"]), "ends": rfc3339(si["ends_at"])}
            for si in from_config + stored]


def silenced(labels: dict[str, str], silences: list[dict[str, Any]], now: float) -> bool:
    """Whether one of `silences` (as `active` returns them) covers `labels` at `now`."""
    return any(all(labels.get(k) == v for k, v in s["match"].items()) and s.get("starts_at", 0) <= now < s["ends_at"]
               for s in silences)


def rfc3339(ts: float | None) -> str | None:
    """What a person reads: RFC 3339 UTC (the epoch-second fields stay for machines)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def silence_duration(value: Any) -> float:
    """A silence's duration in seconds ('2h', 7200): finite, positive and at most
    MAX_SILENCE_SECONDS; ValueError with the reason otherwise."""
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError("must be positive")
    if seconds > MAX_SILENCE_SECONDS:
        raise ValueError(f"{format_duration(seconds)} is longer than the maximum {format_duration(MAX_SILENCE_SECONDS)}")
    return seconds


def _bounded(s: dict[str, Any], now: float) -> dict[str, Any]:
    """A stored silence as shown; one saved before durations were bounded (an end of
    Infinity or year 33715) is shown ending at the bound, not as invalid JSON."""
    if not math.isfinite(s["ends_at"]) or s["ends_at"] > now + MAX_SILENCE_SECONDS:
        return {**s, "ends_at": now + MAX_SILENCE_SECONDS}
    return s


def add_silence(store: Store, match: dict[str, str], duration: float, comment: str, created_by: str,
                now: float | None = None) -> str:
    now = time.time() if now is None else now
    if not (math.isfinite(duration) and 0 < duration <= MAX_SILENCE_SECONDS):
        raise ValueError(f"silence duration {duration!r}: must be positive and at most {MAX_SILENCE_SECONDS:g}s")
    sid = uuid.uuid4().hex[:10]

    def change(items: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
        kept = [s for s in items if s["ends_at"] > now]
        kept.append({"id": sid, "match": match, "starts_at": now, "ends_at": now + duration, "comment": comment,
                     "created_by": created_by})
        return kept, sid

    return store.update_state(SILENCES_KEY, [], change)


def expire_silence(store: Store, silence_id: str, now: float | None = None) -> bool:
    now = time.time() if now is None else now

    def change(items: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
        hit = False
        for s in items:
            if s["id"] == silence_id and s["ends_at"] > now:
                s["ends_at"] = now
                hit = True
        return items, hit

    return store.update_state(SILENCES_KEY, [], change)
