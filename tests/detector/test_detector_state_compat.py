"""State saved by an older detector loads in this one and goes on exactly as the old one did.

tests/detector/data/state_784b503.json was written by the detector at 784b503 (windows
as deques of floats and (t, y) tuples, season counts as a third float32) with
`make_fixture` below: a latency series and an error series after three days of 5-minute
rows with a daily swing, saved in the middle of an incident (held values, quarantine
emptied, record window full), plus what that detector then said for a further day of
rows. The state must load and every status after it must be the same to the last bit.
Regenerate only on purpose (a deliberate change of verdicts), from the commit that writes
the format being tested: `python tests/detector/test_detector_state_compat.py OUT.json`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
import sys
from pathlib import Path
from typing import Any

from detector.config import DetectorConfig
from detector.core import ErrorSeries, LatencySeries, decide

FIXTURE = Path(__file__).parent / "data" / "state_784b503.json"
T0 = 1_700_000_000.0
STEP = 300.0
SAVED_AT = 3 * 288  # rows before the save
AFTER = 288  # rows replayed after it


def params() -> Any:
    # small seasons (24 and 12 bins) keep the fixture small; every window and test on
    p = DetectorConfig(record_margin=0.2, record_window=200, novelty=0.9).params()
    return dataclasses.replace(p, season_bins=24, season_week=2 * 86400.0, season_week_bins=12,
                               season_week_periods=2)


def row(i: int) -> tuple[float, float, bool]:
    """(t, latency, error) of row i: a daily swing, lognormal noise, an incident from
    40 minutes before the save to 3 hours after it."""
    rnd = random.Random(i)
    t = T0 + i * STEP
    x = 0.4 * (1 + 0.4 * math.sin(2 * math.pi * (t % 86400) / 86400)) * math.exp(rnd.gauss(0, 0.12))
    bad = SAVED_AT - 8 <= i < SAVED_AT + 36
    return t, x * (2.5 if bad else 1.0), rnd.random() < (0.2 if bad else 0.004)


def feed(lat: LatencySeries, err: ErrorSeries, rows: range) -> list[list[Any]]:
    """Observe and judge each row as the daemon does (q = p for a single series)."""
    out = []
    for i in rows:
        t, x, e = row(i)
        lat.observe(t, x)
        err.observe(t, e)
        for s, q in ((lat, 1e-5), (err, 1e-3)):
            st = s.status(q)
            decide(s, st, st.p_value, q, t)
            out.append([st.p_value, st.effect, st.effect_ratio, st.exit_ok, st.baseline, st.recent,
                        st.n_baseline, st.n_recent, st.ready, st.record_ratio, s.anomalous])
    return out


def digest(lat: LatencySeries, err: ErrorSeries) -> str:
    # without keys added since the fixture's format (they carry no history: `single` says
    # whether the rows are single probes, which the fixture's are not, as it loads them)
    lst = {k: v for k, v in lat.to_state().items() if not (k == "single" and v is False)}
    state = json.dumps({"lat": lst, "err": err.to_state()}, sort_keys=True)
    return hashlib.sha256(state.encode()).hexdigest()


def make_fixture(path: str) -> None:
    lat, err = LatencySeries(params()), ErrorSeries(params())
    feed(lat, err, range(SAVED_AT))
    assert lat.anomalous and len(lat._held) > 0, "the save must fall inside the incident"
    saved = {"lat": json.loads(json.dumps(lat.to_state())), "err": json.loads(json.dumps(err.to_state()))}
    lat, err = LatencySeries(params()), ErrorSeries(params())
    lat.load_state(saved["lat"])
    err.load_state(saved["err"])
    after = feed(lat, err, range(SAVED_AT, SAVED_AT + AFTER))
    Path(path).write_text(json.dumps({"state": saved, "after": after, "digest": digest(lat, err)}))


def test_state_saved_by_the_old_format_loads_and_goes_on_identically() -> None:
    fx = json.loads(FIXTURE.read_text())
    lat, err = LatencySeries(params()), ErrorSeries(params())
    lat.load_state(fx["state"]["lat"])
    err.load_state(fx["state"]["err"])
    assert lat.anomalous  # saved mid-incident
    got = json.loads(json.dumps(feed(lat, err, range(SAVED_AT, SAVED_AT + AFTER))))
    for k, (a, b) in enumerate(zip(got, fx["after"], strict=True)):
        assert a == b or all(x == y or (x != x and y != y) for x, y in zip(a, b, strict=True)), (k, a, b)
    # and what it saves is what the old detector saved at the same point
    assert digest(lat, err) == fx["digest"]


if __name__ == "__main__":
    make_fixture(sys.argv[1])
