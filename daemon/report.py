"""`llm-vitals report`: one self-contained HTML file (or a Markdown summary) from the stored
probe history.

Per target: a summary (probes, availability, TTFT/e2e quantiles, tokens/s, errors by
outcome, cost), a TTFT distribution and a timeline; across targets: a comparison. The plot
data is reduced in Python before it is written (TIMELINE_BUCKETS buckets and HIST_BINS bins
per target), so the file's size depends on the number of targets, not of probes: 100
targets over 7 days stay well under 5 MB. One target's probes are in memory at a time.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from daemon import history, sweep_store
from daemon.htmldoc import asset, document

TIMELINE_BUCKETS = 200
HIST_BINS = 40
CONCURRENCY_NOTE = ("No scheduled capacity sweep ran in this range, so there is no concurrency plot: "
                    "configure `sweeps:` for the daemon to run them (`llm-vitals sweep` runs one by hand).")
SWEEP_RUNS = 200  # per report: the newest runs in the range


@dataclass
class TargetReport:
    summary: history.Summary
    timeline: dict[str, list[Any]]  # t (bucket starts), p50, p95 (ok TTFT), failed (count)
    ttft_hist: dict[str, list[float]]


@dataclass
class Report:
    since: float
    until: float
    source: str
    region: str
    targets: list[TargetReport] = field(default_factory=list)
    sweeps: list[dict[str, Any]] = field(default_factory=list)  # per sweep: its last measured run, its runs

    @property
    def probes(self) -> int:
        return sum(t.summary.probes for t in self.targets)


def timeline(rows: history.TargetRows, since: float, until: float, buckets: int = TIMELINE_BUCKETS
             ) -> dict[str, list[Any]]:
    width = max((until - since) / buckets, 1.0)
    idx = np.clip(((rows.t - since) // width).astype(int), 0, buckets - 1) if len(rows.t) else np.array([], int)
    p50: list[float | None] = [None] * buckets
    p95: list[float | None] = [None] * buckets
    failed = np.bincount(idx[~rows.ok], minlength=buckets) if len(idx) else np.zeros(buckets, int)
    ok_ttft = rows.ok & ~np.isnan(rows.ttft)
    if ok_ttft.any():
        order = np.argsort(idx[ok_ttft], kind="stable")
        b_sorted, v_sorted = idx[ok_ttft][order], rows.ttft[ok_ttft][order]
        starts = np.searchsorted(b_sorted, np.arange(buckets + 1))
        for b in range(buckets):
            lo, hi = starts[b], starts[b + 1]
            if hi > lo:
                q = np.percentile(v_sorted[lo:hi], [50, 95])
                p50[b], p95[b] = round(float(q[0]), 5), round(float(q[1]), 5)
    return {"t": [round(since + i * width, 3) for i in range(buckets)], "p50": p50, "p95": p95,
            "failed": [int(x) or None for x in failed]}


def build(conn: sqlite3.Connection, since: float, until: float, targets: Sequence[str] | None,
          price: history.Price, source: str, region: str) -> Report:
    report = Report(since, until, source, region)
    # the timelines share one axis, from the first stored probe (a store younger than the
    # range would otherwise leave most of every timeline empty)
    first = conn.execute("SELECT MIN(started_at_ns) FROM results WHERE started_at_ns >= ?",
                         (history.ns(since),)).fetchone()[0]
    start = max(since, first / 1e9) if first is not None else since
    for key in history.select_targets(history.targets_stored(conn, since, until), targets):
        rows = history.target_rows(conn, key, since, until)
        report.targets.append(TargetReport(
            history.summarize(rows, price(key)), timeline(rows, start, until),
            history.histogram(rows.ttft[rows.ok], HIST_BINS)))
    report.sweeps = sweeps(conn, since, until, targets)
    return report


def sweeps(conn: sqlite3.Connection, since: float, until: float, targets: Sequence[str] | None) -> list[dict[str, Any]]:
    """Each sweep that ran in the range (of the chosen targets): its newest measured run (the
    concurrency plot) and every run's time, outcome and knee (oldest first)."""
    by_name: dict[str, list[sweep_store.SweepRun]] = {}
    for run in sweep_store.runs(conn, since, until, limit=SWEEP_RUNS):
        if targets and not any(run.target == t or run.target.startswith(t + "/") for t in targets):
            continue
        by_name.setdefault(run.name, []).append(run)
    out = []
    for name in sorted(by_name):
        runs = by_name[name]
        last = next((r for r in runs if r.outcome != "refused"), None)
        out.append({"name": name, "target": runs[0].target, "last": None if last is None else last.to_dict(),
                    "runs": [{"started_at": r.started_at, "outcome": r.outcome, "reason": r.report.get("reason"),
                              "saturation": (r.report.get("saturation") or {}).get("concurrency")}
                             for r in reversed(runs)]})
    return out


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")


def html(report: Report) -> str:
    boot = {
        "title": "llm-vitals report",
        "since": report.since, "until": report.until, "source": report.source, "region": report.region,
        "generated_at": time.time(),
        "concurrency_note": CONCURRENCY_NOTE,
        "sweeps": report.sweeps,
        "targets": [{"summary": t.summary.to_dict(), "timeline": t.timeline, "hist": t.ttft_hist}
                    for t in report.targets],
    }
    return document(f"llm-vitals report {_utc(report.since)} – {_utc(report.until)}", boot, asset("report.js"))


def _ms(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v * 1000:.0f} ms" if v < 1 else f"{v:.2f} s"


def markdown(report: Report) -> str:
    """The summary table for an incident document."""
    lines = [f"## llm-vitals: {_utc(report.since)} – {_utc(report.until)} (region {report.region})", ""]
    if not report.targets:
        return "\n".join([*lines, "No probe stored in this range.", ""])
    lines += ["| Target | Probes | Availability | TTFT p50 | TTFT p95 | TTFT p99 | e2e p50 | e2e p95 | "
              "Tokens/s p50 | Errors | Cost |",
              "|---|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|"]
    for t in report.targets:
        s = t.summary
        avail = "–" if s.availability is None else f"{s.availability:.2%}"
        errs = ", ".join(f"{k} {v}" for k, v in s.errors.items()) or "none"
        tps = "–" if s.output_tps["p50"] is None else f"{s.output_tps['p50']:.1f}"
        cost = "–" if s.cost_usd is None else f"${s.cost_usd:.4f}"
        lines.append(f"| `{s.target}` | {s.probes} | {avail} | {_ms(s.ttft['p50'])} | {_ms(s.ttft['p95'])} | "
                     f"{_ms(s.ttft['p99'])} | {_ms(s.e2e['p50'])} | {_ms(s.e2e['p95'])} | {tps} | {errs} | {cost} |")
    lines += ["", f"{report.probes} probes from {len(report.targets)} targets; latencies of ok probes only. "
              f"Source: `{report.source}`.", ""]
    return "\n".join(lines + sweeps_markdown(report.sweeps))


def sweeps_markdown(sweeps: list[dict[str, Any]]) -> list[str]:
    """Each sweep's last measured run, level by level (where the target saturates)."""
    lines: list[str] = []
    for w in sweeps:
        last = w["last"]
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(_count(r["outcome"] for r in w["runs"]).items()))
        lines += [f"### Capacity sweep `{w['name']}` of `{w['target']}`", "", f"Runs in range: {outcomes}.", ""]
        if last is None:
            lines += ["No measured run in this range.", ""]
            continue
        sat = last.get("saturation")
        knee = "none within the levels swept" if sat is None else f"{sat['concurrency']} streams ({sat['reason']})"
        lines += [f"Last run {_utc(last['started_at'])}, {last['outcome']}; saturation: {knee}.", "",
                  "| Streams | Prompt tokens | ok / requests | TTFT p50 | TTFT p95 | e2e p50 | Tokens/s p50 | "
                  "Aggregate tokens/s |", "|--:|--:|--:|--:|--:|--:|--:|--:|"]
        for lv in last["levels"]:
            tps = "–" if lv["output_tps_p50"] is None else f"{lv['output_tps_p50']:.1f}"
            agg = "–" if lv["aggregate_output_tps"] is None else f"{lv['aggregate_output_tps']:.1f}"
            lines.append(f"| {lv['concurrency']} | {lv['prompt_tokens'] or '–'} | {lv['ok']} / {lv['requests']} | "
                         f"{_ms(lv['ttft_p50'])} | {_ms(lv['ttft_p95'])} | {_ms(lv['e2e_p50'])} | {tps} | {agg} |")
        lines.append("")
    return lines


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return out
