"""Where an alert goes and whether it may speak: the route tree, silences, maintenance
windows and inhibition. Checked in one place, before any notifier (STYLE: gatus)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from alerts.config import Inhibit, Maintenance, Route
from alerts.rules import matches


def route_for(route: Route, labels: dict[str, str]) -> list[Route]:
    """The matching routes, deepest first (Alertmanager semantics: first match unless continue)."""
    out: list[Route] = []
    for sub in route.routes:
        if matches(labels, sub.match) and all(re.fullmatch(p, labels.get(k, "")) for k, p in sub.match_re.items()):
            child = _inherit(sub, route)
            out.extend(route_for(child, labels) or [child])
            if not sub.continue_:
                break
    return out


_INHERITED = ("receiver", "group_by", "group_wait", "group_interval", "repeat_interval", "repeat_max", "escalate")


def _inherit(child: Route, parent: Route) -> Route:
    """A child route takes every setting it does not set itself from its parent (as in Alertmanager)."""
    update = {f: getattr(parent, f) for f in _INHERITED if f not in child.model_fields_set}
    return child.model_copy(update=update) if update else child


def in_maintenance(windows: list[Maintenance], labels: dict[str, str], now: float) -> bool:
    for w in windows:
        if not matches(labels, w.match):
            continue
        tz = ZoneInfo(w.timezone)
        utc_now = datetime.fromtimestamp(now, UTC)
        # the latest start at or before now (local time); inside the window if it ends after
        # now. Compared in UTC: aware datetimes of one zone add and compare as wall-clock
        # times, which made a window an hour short or long across a DST change.
        start = croniter(w.cron, utc_now.astimezone(tz) + timedelta(seconds=1)).get_prev(datetime).astimezone(UTC)
        if start <= utc_now < start + timedelta(seconds=w.duration):
            return True
    return False


def inhibited(rules: list[Inhibit], labels: dict[str, str], firing: list[dict[str, str]]) -> bool:
    """A provider-wide outage (source) suppresses the per-model alerts (targets) it explains."""
    for inh in rules:
        if not matches(labels, inh.target_match):
            continue
        # As in Alertmanager: an alert on both sides of the rule is not inhibited by another
        # alert on both sides (two provider-wide alerts would otherwise mute each other).
        both = matches(labels, inh.source_match)
        for src in firing:
            if src is labels or src == labels:
                continue
            if both and matches(src, inh.target_match):
                continue
            if matches(src, inh.source_match) and all(src.get(k) == labels.get(k) for k in inh.equal):
                return True
    return False
