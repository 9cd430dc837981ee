"""The benches' percentile: the nearest rank, so every printed figure is a value that was
measured (no interpolation between two samples), nan for no samples."""

from __future__ import annotations


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))]
