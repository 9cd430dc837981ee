"""Human durations ("500ms", "30s", "5m", "6h", "14d") and percentages ("10%")."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_SECONDS = re.compile(r"\d+(?:\.\d+)?")


def parse_duration(value: Any) -> float:
    """Seconds from '1h30m', '500ms', '30s' or a bare number of seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '30s'")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError("a duration must be a finite number of seconds")
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("expected a duration such as '30s'")
    text = value.strip().lower().replace(" ", "")
    if _SECONDS.fullmatch(text):
        # a bare number is seconds in a string too, as in YAML: environment variables are
        # strings (LLM_VITALS_DETECTOR__SEASON=0 turns the season off)
        return float(text)
    pos = 0
    total = 0.0
    for m in _PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(
            f"invalid duration {value!r}: use a number with a unit ms, s, m, h, d or w, e.g. '30s', '5m', '1h30m'"
        )
    if not math.isfinite(total):  # a few hundred digits overflow to inf
        raise ValueError(f"invalid duration {value!r}: too large")
    return total


def format_duration(seconds: float) -> str:
    if seconds < 1 and seconds != 0:
        return f"{seconds * 1000:g}ms"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def parse_fraction(value: Any) -> float:
    """'10%' → 0.1; 0.1 → 0.1."""
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("%"):
            try:
                return float(text[:-1]) / 100
            except ValueError:
                raise ValueError(f"invalid percentage {value!r}") from None
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"invalid fraction {value!r}: use e.g. '10%' or 0.1") from None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise ValueError("expected a percentage such as '10%'")


# The JSON Schema says what a user may write (a string with a unit, or seconds), not the float
# the model holds after parsing.
_DURATION_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": r"^\s*((\d+(\.\d+)?(ms|s|m|h|d|w)\s*)+|\d+(\.\d+)?\s*)$"},
        {"type": "number", "minimum": 0},
    ],
    "description": "a duration: '500ms', '30s', '5m', '1h30m', '14d', or seconds",
}
_FRACTION_SCHEMA = {
    "anyOf": [{"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*%?\s*$"}, {"type": "number"}],
    "description": "a fraction: '10%' or 0.1",
}

Duration = Annotated[
    float, BeforeValidator(parse_duration), PlainSerializer(format_duration), WithJsonSchema(_DURATION_SCHEMA)
]
Fraction = Annotated[float, BeforeValidator(parse_fraction), WithJsonSchema(_FRACTION_SCHEMA)]


def check_timezone(name: str) -> str:
    """An IANA time zone name, or ValueError saying what is expected."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {name!r} (an IANA name such as 'UTC' or 'Europe/Paris')") from None
    return name
