"""Durations as config and environment variables spell them."""

from __future__ import annotations

import pytest

from core.durations import parse_duration
from daemon.config import Settings


@pytest.mark.parametrize(("text", "seconds"), [("1h30m", 5400.0), ("500ms", 0.5), ("0", 0.0), (" 90 ", 90.0),
                                                ("2.5", 2.5), (45, 45.0)])
def test_units_and_bare_seconds(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["60 seconds", "-5", "5x", "", "1e3", "nan", "h"])
def test_anything_else_is_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_an_environment_variable_of_bare_seconds_is_a_duration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_VITALS_DETECTOR__SEASON", "0")  # strings only: the season off
    monkeypatch.setenv("LLM_VITALS_DETECTOR__EXIT_HOLD", "1800")
    d = Settings().detector
    assert d.season == 0.0 and d.exit_hold == 1800.0
