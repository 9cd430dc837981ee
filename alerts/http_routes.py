"""Alert endpoints for the daemon's HTTP API (behind the bearer token when one is set)."""

from __future__ import annotations

from typing import Any

from alerts.engine import AlertEngine
from alerts.silences import silence_duration

Reply = tuple[int, Any]


def alerts_get(engine: AlertEngine) -> Reply:
    return 200, {"alerts": engine.firing()}


def silences_get(engine: AlertEngine) -> Reply:
    return 200, {"silences": engine.silences()}


def silences_post(engine: AlertEngine, body: Any) -> Reply:
    if not isinstance(body, dict):
        return 400, {"error": "body must be a JSON object with `match`, `duration` and `comment`"}
    match = body.get("match")
    if not isinstance(match, dict) or not match or not all(isinstance(v, str) for v in match.values()):
        return 400, {"error": "`match` must be a non-empty object of label: value"}
    try:
        duration = silence_duration(body.get("duration", "1h"))
    except ValueError as exc:
        return 400, {"error": f"duration: {exc}"}
    sid = engine.add_silence(match, duration, str(body.get("comment", "")), str(body.get("created_by", "api")))
    return 201, {"id": sid}


def silence_delete(engine: AlertEngine, silence_id: str) -> Reply:
    if engine.expire_silence(silence_id):
        return 200, {"id": silence_id, "expired": True}
    return 404, {"error": f"no active silence {silence_id!r}"}


async def alert_test(engine: AlertEngine, receiver: str) -> Reply:
    ok, detail = await engine.send_test(receiver)
    if not ok and detail.startswith("unknown receiver"):
        return 404, {"error": detail}
    return (200 if ok else 502), {"receiver": receiver, "result": detail}
