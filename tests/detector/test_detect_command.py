"""`llm-vitals detect`: CSV in, per-row verdicts out, through the daemon's own detector."""

from __future__ import annotations

import csv
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from core.result import Outcome, ProbeResult
from detector.core import ErrorSeries
from detector.replay import _log_scale, replay
from detector.service import Detector, DetectorConfig
from tests.detector.factories import write_csv

T0 = 1_700_000_000.0
HEADER = ["timestamp", "value", "score", "anomalous", "onset"]


def latencies(seed: int, n: int = 400, step_at: int | None = 300, factor: float = 2.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = 0.4 * np.exp(rng.normal(0, 0.12, n))
    if step_at is not None:
        v[step_at:] *= factor
    return v


def detect(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "daemon.cli", "detect", *args],
                          capture_output=True, text=True, timeout=120)


def rows(text: str) -> list[list[str]]:
    return list(csv.reader(text.splitlines()))


def onsets(table: list[list[str]]) -> list[int]:
    return [i for i, r in enumerate(table[1:]) if r[4] == "1"]


def test_one_file_to_stdout_pages_once_at_the_step(tmp_path: Path) -> None:
    f = write_csv(tmp_path / "ttft.csv", latencies(1))
    done = detect(str(f))
    assert done.returncode == 0, done.stderr
    table = rows(done.stdout)
    assert table[0] == HEADER
    assert len(table) == 401
    got = onsets(table)
    assert len(got) == 1 and 300 <= got[0] < 305, got
    # anomalous from the onset on, score >= 1 exactly when anomalous
    assert all((r[3] == "1") == (float(r[2]) >= 1.0) for r in table[1:])
    assert table[1][0] == "2023-11-14 22:13:20"  # timestamps and values echoed as given


def test_several_files_to_a_directory_with_rfc3339_and_extra_columns(tmp_path: Path) -> None:
    a = write_csv(tmp_path / "a.csv", latencies(2))
    b = write_csv(tmp_path / "b.csv", latencies(2), rfc3339=True, extra=True)
    out = tmp_path / "out"
    done = detect("--out", str(out), str(a), str(b))
    assert done.returncode == 0, done.stderr
    ta, tb = rows((out / "a.csv").read_text()), rows((out / "b.csv").read_text())
    assert [r[1:] for r in ta] == [r[1:] for r in tb]  # same series, same verdicts
    assert tb[1][0].endswith("Z") and len(onsets(ta)) == 1


def test_an_unreadable_file_exits_2_with_file_and_line_and_the_others_are_done(tmp_path: Path) -> None:
    good = write_csv(tmp_path / "good.csv", latencies(3))
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 00:01:00,1.2\n2024-01-01 00:02:00,slow\n")
    nohead = tmp_path / "nohead.csv"
    nohead.write_text("time,latency\n2024-01-01 00:00:00,1\n")
    badtime = tmp_path / "badtime.csv"
    badtime.write_text("timestamp,value\n01/02/2024 10:00,1\n")
    out = tmp_path / "out"
    done = detect("--out", str(out), str(bad), str(good), str(nohead), str(badtime), str(tmp_path / "missing.csv"))
    assert done.returncode == 2
    assert f"{bad}:4: value 'slow' is not a number" in done.stderr
    assert f"{nohead}:1:" in done.stderr and "timestamp" in done.stderr
    assert f"{badtime}:2:" in done.stderr
    assert f"{tmp_path / 'missing.csv'}: cannot read" in done.stderr
    assert (out / "good.csv").exists() and not (out / "bad.csv").exists()


def test_config_detector_settings_are_used(tmp_path: Path) -> None:
    f = write_csv(tmp_path / "ttft.csv", latencies(4))
    cfg = tmp_path / "c.yaml"
    # a doubling is below +200% (and, with min_effect_sigmas off, not large for a calm series)
    cfg.write_text("detector:\n  min_effect: 2.0\n  min_effect_sigmas: 0\n")
    done = detect("-c", str(cfg), str(f))
    assert done.returncode == 0, done.stderr
    assert onsets(rows(done.stdout)) == []
    cfg.write_text("detector:\n  min_efect: 2.0\n")
    bad = detect("-c", str(cfg), str(f))
    assert bad.returncode == 2 and "min_efect" in bad.stderr


def test_direction_down_and_both_page_a_fall_up_does_not(tmp_path: Path) -> None:
    f = write_csv(tmp_path / "tps.csv", latencies(5, factor=0.5))
    got = {d: onsets(rows(detect("--direction", d, str(f)).stdout)) for d in ("up", "down", "both")}
    assert got["up"] == []
    assert len(got["down"]) == 1 and len(got["both"]) == 1


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    a = write_csv(tmp_path / "a.csv", latencies(6, n=10, step_at=None))
    (tmp_path / "d").mkdir()
    b = write_csv(tmp_path / "d" / "a.csv", latencies(6, n=10, step_at=None))
    assert detect(str(a), str(b)).returncode == 2  # two files, no --out
    clash = detect("--out", str(tmp_path / "o"), str(a), str(b))
    assert clash.returncode == 2 and "a.csv" in clash.stderr


@pytest.mark.parametrize("step", [60.0, 300.0, 1800.0])
def test_replay_is_the_daemons_path(step: float) -> None:
    """The same values fed as probes to the daemon's Detector give the same verdicts: at
    one probe a minute whatever the rows are taken for, at longer intervals when they are
    taken for single probes (`detect --probes`)."""
    values = latencies(7, n=600, step_at=500, factor=3.0)
    times = [T0 + step * i for i in range(len(values))]
    det = Detector(DetectorConfig())
    daemon = []
    for t, v in zip(times, values, strict=True):
        det.observe(ProbeResult(outcome=Outcome.OK, status_code=200, ttft=float(v), provider="p", model="m",
                                probe="short", region="r", started_at=datetime.fromtimestamp(t, UTC)))
        verdict = det.evaluate(now=t)[("p/m/short", "ttft")]
        daemon.append((verdict.score, verdict.anomalous))
    replayed = [(s, a) for s, a, _ in replay(DetectorConfig(), times, list(values), single_probes=True)]
    assert replayed == daemon
    assert any(a for _, a in daemon)
    if step == 60.0:
        assert [(s, a) for s, a, _ in replay(DetectorConfig(), times, list(values))] == daemon


def test_probes_flag_reads_rows_as_single_probes(tmp_path: Path) -> None:
    """A heavy-tailed series of single probes every 5 minutes: read as 5-minute aggregates
    (the default) its slow probes page; with --probes, as the daemon reads them, they do not,
    and the step still pages."""
    rng = np.random.default_rng(3)
    values = 0.4 * np.exp(rng.normal(0, 0.12, 5 * 288))
    tail = rng.random(len(values)) < 0.02
    values[tail] *= 1.5 * (1 + rng.pareto(1.5, tail.sum()))
    values[4 * 288:] *= 2.0
    f = write_csv(tmp_path / "ttft.csv", values, step=300.0)
    aggregates, probes = detect(str(f)), detect("--probes", str(f))
    assert aggregates.returncode == probes.returncode == 0, (aggregates.stderr, probes.stderr)
    before = [i for i in onsets(rows(aggregates.stdout)) if i < 4 * 288]
    got = onsets(rows(probes.stdout))
    assert len(before) >= 2, before
    assert len(got) == 1 and 4 * 288 <= got[0] < 4 * 288 + 5, got


def test_evaluate_one_is_evaluate_of_a_detector_holding_that_series() -> None:
    """detect's shortcut (one series, its own BH family) gives evaluate's verdict, whole, on
    every row: latency with a step, and errors with a burst (their own q level)."""
    values = latencies(9)
    rng = np.random.default_rng(9)
    errors = (rng.random(len(values)) < 0.02) | (np.arange(len(values)) >= 330)
    for metric, feed in (("value", values), ("error", errors)):
        one, full = Detector(DetectorConfig()), Detector(DetectorConfig())
        seen = []
        for i, x in enumerate(feed):
            t = T0 + 60 * i
            for det in (one, full):
                if metric == "error":
                    s = det._get("t", "error")
                    assert isinstance(s, ErrorSeries)
                    s.observe(t, bool(x))
                else:
                    det.observe_value("t", metric, t, float(x))
            got = one.evaluate_one("t", metric, now=t)
            assert got is not None
            assert repr(got) == repr(full.evaluate(now=t)[("t", metric)])  # repr: nan == nan
            seen.append(got.anomalous)
        assert any(seen) and not all(seen)
    assert Detector(DetectorConfig()).evaluate_one("t", "value", now=T0) is None


def test_rare_zeros_in_a_latency_series_are_skipped_not_a_switch_to_raw_values() -> None:
    """Up (latency): a few zero rows (hours without requests) are rows without data; the rest
    of the series is judged as it would be without them. Both ways a drop to zero may be the
    incident, so such a series is judged on raw values."""
    values = latencies(8)
    times = [T0 + 60 * i for i in range(len(values))]
    holed = list(values)
    for i in (150, 220, 330):  # 3 of 400 rows
        holed[i] = 0.0
    keep = [i for i in range(len(values)) if holed[i] > 0]
    clean = list(replay(DetectorConfig(), [times[i] for i in keep], [holed[i] for i in keep]))
    got = list(replay(DetectorConfig(), times, holed))
    assert [got[i] for i in keep] == clean
    assert [i for i, (_, _, o) in enumerate(got) if o] == [keep[i] for i, (_, _, o) in enumerate(clean) if o] != []
    # a count of rare events (mostly zeros) is judged on raw values, up too
    assert not _log_scale([0.0 if i % 3 else 5.0 for i in range(400)], 1)
    assert _log_scale(holed, 1) and not _log_scale(holed, 0) and not _log_scale(holed, -1)
