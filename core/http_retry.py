"""One answer to "try this HTTP request again later, or give up?" for every room that sends
(the InfluxDB sink, the notifiers): 5xx and the transient 4xx are worth a retry (after the
server's Retry-After when it sent one); any other 4xx will fail the same way again."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from core.retry_after import retry_after_seconds

# Request Timeout, Too Early, Too Many Requests: the same request may succeed later
TRANSIENT_4XX = frozenset({408, 425, 429})


@dataclass(frozen=True, slots=True)
class HttpFailure:
    status: int
    retry: bool  # worth sending again later
    retry_after: float | None  # seconds the server asked us to wait, when it said


def classify(status: int, headers: Mapping[str, str] | None = None,
             also_transient: Collection[int] = ()) -> HttpFailure | None:
    """None for a success (below 400); else whether to retry and when. `also_transient`: 4xx
    a particular server answers while it is starting or being set up (InfluxDB's 404 for a
    database not created yet), which would otherwise read as permanent."""
    if status < 400:
        return None
    retry = status >= 500 or status in TRANSIENT_4XX or status in also_transient
    wait = retry_after_seconds(_header(headers, "retry-after")) if retry else None
    return HttpFailure(status, retry, wait)


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """Case-insensitive, whatever the mapping (httpx.Headers is; a plain dict from an SDK is not)."""
    if not headers:
        return None
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value
