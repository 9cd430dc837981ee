"""`llm-vitals detect`: replay CSV series through the daemon's detector (backtests).

Each file is one series of `timestamp,value` rows (other columns ignored; or the columns
`Rows` names, e.g. an `export` of probes' `started_at,ttft`), fed row by row
to a `Detector` built from the same `detector:` settings the daemon runs, and evaluated
after every row exactly as the daemon evaluates after probes. Output per row:
`timestamp,value,score,anomalous,onset` (onset = 1 where an incident starts: where the
daemon would page).

A file is read and checked whole before it is replayed, so an unreadable one produces no
partial output: its error names the file and line and the command exits 2 (after doing the
other files).
"""

from __future__ import annotations

import csv
import io
import math
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from detector.service import Detector, DetectorConfig

DIRECTIONS = {"up": 1, "down": -1, "both": 0}
_TARGET = "detect"
_METRIC = "value"


class InputError(Exception):
    """An unreadable input: `file:line: reason`."""

    def __init__(self, path: str, line: int | None, reason: str) -> None:
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True, slots=True)
class Rows:
    """How to read a file's rows: its time and value columns, and whether each row is one
    probe (as the daemon's own series are: `--probes`, for a target's exported probes, whose
    failed probes have no latency and are skipped, as the daemon judges them only as errors)
    or an aggregate of the probe intervals it spans (an hourly mean; the default)."""

    time: str = "timestamp"
    value: str = "value"
    probes: bool = False


@dataclass(slots=True)
class Series:
    stamps: list[str]  # as written in the file (echoed in the output)
    times: list[float]  # unix seconds
    values: list[float]
    raw_values: list[str]
    backwards: int | None = None  # first line whose timestamp is earlier than the row before
    blank: int = 0  # rows without a value, skipped (single probes only: failed ones)


def parse_timestamp(text: str) -> float:
    """Unix seconds of an RFC 3339 or `YYYY-MM-DD HH:MM:SS` timestamp (UTC when no zone)."""
    s = text.strip()
    if len(s) < 19 or s[10] not in "Tt ":
        raise ValueError(f"timestamp {text!r}: expected RFC 3339 or YYYY-MM-DD HH:MM:SS")
    if s[-1] in "zZ":
        s = s[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(f"timestamp {text!r}: expected RFC 3339 or YYYY-MM-DD HH:MM:SS") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def read_series(path: str, stream: TextIO, rows: Rows = Rows()) -> Series:
    """Parse one CSV; InputError with the line for anything that is not a time-ordered series."""
    reader = csv.reader(stream)
    try:
        header = next(reader, None)
    except (csv.Error, UnicodeDecodeError) as exc:
        raise InputError(path, 1, f"not CSV: {exc}") from None
    if header is None:
        raise InputError(path, 1, "empty file: expected a header with timestamp and value columns")
    names = [h.strip().lower() for h in header]
    want = (rows.time.strip().lower(), rows.value.strip().lower())
    if want[0] not in names or want[1] not in names:
        raise InputError(path, 1, f"header {header!r} lacks a {rows.time!r} and a {rows.value!r} column")
    it, iv = names.index(want[0]), names.index(want[1])
    out = Series([], [], [], [])
    last = -math.inf
    try:
        for row in reader:
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) <= max(it, iv):
                raise InputError(path, line, f"{len(row)} columns, header has {len(header)}")
            try:
                t = parse_timestamp(row[it])
            except ValueError as exc:
                raise InputError(path, line, str(exc)) from None
            if rows.probes and not row[iv].strip():
                out.blank += 1
                continue
            try:
                v = float(row[iv])
            except ValueError:
                raise InputError(path, line, f"value {row[iv]!r} is not a number") from None
            if not math.isfinite(v):
                raise InputError(path, line, f"value {row[iv]!r} is not a finite number")
            if t < last and out.backwards is None:
                out.backwards = line
            last = max(last, t)
            out.stamps.append(row[it])
            out.times.append(t)
            out.values.append(v)
            out.raw_values.append(row[iv])
    except (csv.Error, UnicodeDecodeError) as exc:
        raise InputError(path, reader.line_num, f"not CSV: {exc}") from None
    return out


# at most this share of a rising-is-bad series' rows may be zero or negative for it to stay
# on the log scale (those rows skipped)
_RARE_NONPOSITIVE = 0.1


def _log_scale(values: list[float], direction: int) -> bool:
    """Judge relative changes (log scale) unless the series holds zeros or negatives.

    Where only a rise is anomalous (latency, `detect`'s default) a rare zero or negative
    row is an hour without data (no requests, a sentinel), not a fast hour: such rows are
    skipped and the series stays on the log scale, instead of the whole series being judged
    on raw values for their sake. Measured on bench/detection.py's synthetic hourly latency
    set (70.1 as it is): with three zero hours a series 62.6 on the raw scale, 70.4 with
    them skipped; with one hour in ten zero 60.3 and 73.4. Where a fall is anomalous too,
    a drop to zero may be the incident (traffic stopped): raw scale. A series mostly of
    zeros (a count of rare events) is raw either way."""
    bad = sum(1 for v in values if not v > 0)
    return bad == 0 or (direction > 0 and bad <= _RARE_NONPOSITIVE * len(values))


def replay(cfg: DetectorConfig, times: list[float], values: list[float], direction: int = 1,
           threshold: float = 1.0, single_probes: bool = False) -> Iterator[tuple[float, bool, bool]]:
    """(score, anomalous, onset) per row: the daemon's Detector fed one row at a time.

    A series of positive values is judged on the log scale (relative changes, like the
    daemon's latencies); one with zeros or negatives on the raw scale (robust sigmas),
    except a rising-is-bad one where they are rare (see _log_scale). single_probes: every row
    is one probe, as the daemon's own series are (else a row spanning k probe intervals is
    an aggregate of k probes, as an hourly mean is)."""
    log_scale = _log_scale(values, direction)
    det = Detector(cfg, threshold=threshold)
    was = False
    for t, v in zip(times, values, strict=True):
        det.observe_value(_TARGET, _METRIC, t, v, direction=direction, log_scale=log_scale,
                          single_probes=single_probes)
        verdict = det.evaluate_one(_TARGET, _METRIC, now=t)  # evaluate(), for the one series
        if verdict is None:  # the detector is disabled
            yield 0.0, False, False
            continue
        yield verdict.score, verdict.anomalous, verdict.anomalous and not was
        was = verdict.anomalous


def write_rows(out: TextIO, series: Series, verdicts: Iterable[tuple[float, bool, bool]]) -> None:
    w = csv.writer(out, lineterminator="\n")
    w.writerow(("timestamp", "value", "score", "anomalous", "onset"))
    for ts, v, (score, anomalous, onset) in zip(series.stamps, series.raw_values, verdicts, strict=True):
        w.writerow((ts, v, f"{score:.4f}", int(anomalous), int(onset)))


def detect_file(cfg: DetectorConfig, path: str, direction: int, out: TextIO, rows: Rows = Rows()) -> None:
    """Read, check and replay one file into `out` (nothing written when it is unreadable)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            series = read_series(path, f, rows)
    except OSError as exc:
        raise InputError(path, None, f"cannot read: {exc.strerror}") from None
    if series.backwards is not None:
        # real exports have these (a clock set back); the daemon takes probes as they come
        print(f"warning: {path}:{series.backwards}: timestamp earlier than the row before; "
              "rows are replayed in file order", file=sys.stderr)
    if series.blank:
        print(f"note: {path}: {series.blank} rows without a value skipped (failed probes)", file=sys.stderr)
    buf = io.StringIO()
    write_rows(buf, series, replay(cfg, series.times, series.values, direction, single_probes=rows.probes))
    out.write(buf.getvalue())


def run_detect(cfg: DetectorConfig, files: list[str], direction: str, out_dir: str | None,
               rows: Rows = Rows()) -> int:
    """Exit status: 0, or 2 when an input (reported on stderr) was unreadable."""
    sign = DIRECTIONS[direction]
    status = 0
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    for path in files:
        try:
            if out_dir is None:
                detect_file(cfg, path, sign, sys.stdout, rows)
            else:
                buf = io.StringIO()
                detect_file(cfg, path, sign, buf, rows)
                (Path(out_dir) / Path(path).name).write_text(buf.getvalue())
        except InputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 2
    return status
