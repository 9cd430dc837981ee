"""Edge cases where respx and freezegun fit better than a real server or a real clock:
the HTTP classes a notifier must retry or give up on (every Retry-After form), and the
UTC-midnight budget reset."""

from __future__ import annotations

import httpx
import pytest
import respx
from freezegun import freeze_time

from alerts.notifiers.base import DeliveryError
from alerts.notifiers.webhook import post_json
from daemon.budget import BudgetTracker
from daemon.config import Budgets
from daemon.metrics import Metrics
from tests.factories import result

URL = "https://hooks.example.test/alert"


@pytest.mark.parametrize(("status", "headers", "retry_after", "permanent"), [
    (429, {"Retry-After": "7"}, 7.0, False),
    (429, {"Retry-After": "Wed, 02 Dec 2026 10:00:30 GMT"}, 30.0, False),  # an HTTP-date, 30 s after "now"
    (429, {"Retry-After": "Wed, 02 Dec 2026 09:59:00 GMT"}, 0.0, False),  # in the past: now
    (503, {"Retry-After": "soon"}, None, False),  # unreadable: the caller's own backoff
    (500, {}, None, False),
    (502, {"Retry-After": "nan"}, None, False),
    (400, {}, None, True),  # the request is wrong: retrying cannot help
    (404, {}, None, True),
])
@freeze_time("2026-12-02 10:00:00", tz_offset=0)
async def test_webhook_http_classes_and_retry_after(status: int, headers: dict[str, str],
                                                   retry_after: float | None, permanent: bool) -> None:
    with respx.mock(assert_all_called=True) as mock:
        mock.post(URL).mock(return_value=httpx.Response(status, headers=headers, text="nope"))
        with pytest.raises(DeliveryError) as err:
            await post_json(URL, b"{}", {}, timeout=5)
    assert err.value.retry_after == retry_after
    assert err.value.permanent is permanent


async def test_webhook_network_errors_are_retryable() -> None:
    with respx.mock() as mock:
        mock.post(URL).mock(side_effect=httpx.ConnectTimeout("timed out"))
        with pytest.raises(DeliveryError) as err:
            await post_json(URL, b"{}", {}, timeout=5)
    assert not err.value.permanent and "ConnectTimeout" in str(err.value)


def test_daily_budget_resets_at_utc_midnight() -> None:
    with freeze_time("2026-12-02 23:59:50") as clock:
        tracker = BudgetTracker(Budgets(daily_tokens=100), Metrics())
        tracker.add(result(0.5, output_tokens=80, input_tokens=30), None)
        assert tracker.exhausted() is not None
        clock.move_to("2026-12-03 00:00:01")
        assert tracker.exhausted() is None  # a new UTC day
