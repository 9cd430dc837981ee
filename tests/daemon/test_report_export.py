"""`llm-vitals report` (opened in headless Chromium) and `llm-vitals export` (against what
`probe --format json` printed for the same probes)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
import statistics
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.result import JSON_FIELDS, Outcome, ProbeResult
from core.store import Store
from daemon.config import load_settings
from daemon.probe_command import printer, run_probes
from tests.browser import render
from tests.conftest import REPO
from tests.factories import result

CONFIG = """
storage: {{path: "{db}"}}
providers:
  - name: p1
    kind: openai_compatible
    base_url: "http://127.0.0.1:9/v1"
    models: [m-fast, m-slow]
    prices: {{m-fast: {{input_per_mtok: 1.0, output_per_mtok: 2.0}}}}
  - name: p2
    kind: anthropic
    base_url: "http://127.0.0.1:9/v1"
    models: [m-x]
"""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "daemon.cli", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=120)


def seed(db: Path, hours: int = 48, every_min: int = 10) -> dict[str, list[ProbeResult]]:
    """Three targets every `every_min` minutes; m-slow fails one probe in 7 and is slower."""
    now = datetime.now(UTC)
    out: dict[str, list[ProbeResult]] = {}
    for provider, model, base in (("p1", "m-fast", 0.12), ("p1", "m-slow", 0.9), ("p2", "m-x", 0.3)):
        rs = []
        for i in range(hours * 60 // every_min):
            at = now - timedelta(minutes=i * every_min + 1)
            if model == "m-slow" and i % 7 == 0:
                r = result(provider=provider, model=model, started_at=at, outcome=Outcome.HTTP_ERROR)
                r = ProbeResult(**{**{f: getattr(r, f) for f in r.__dataclass_fields__},
                                   "ttft": None, "e2e": None, "status_code": 503, "error": "HTTP 503: overloaded"})
            else:
                r = result(base + (i % 10) * 0.01, provider=provider, model=model, started_at=at)
            rs.append(r)
        out[f"{provider}/{model}/short"] = rs
    store = Store(db)
    store.add_results([r for rs in out.values() for r in rs])
    store.close()
    return out


@pytest.fixture
def seeded(tmp_path: Path) -> tuple[Path, dict[str, list[ProbeResult]]]:
    db = tmp_path / "state.db"
    stored = seed(db)
    cfg = tmp_path / "vitals.yaml"
    cfg.write_text(CONFIG.format(db=db))
    return cfg, stored


def test_report_is_one_offline_file_that_draws_in_a_browser(seeded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg, stored = seeded
    out = tmp_path / "report.html"
    r = cli("report", "-c", str(cfg), "--since", "3d", "--out", str(out))
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert len(text.encode()) < 5_000_000
    # self-contained: no external script, stylesheet or font
    assert "<script src" not in text and "<link" not in text and "@import" not in text
    page = render(out.as_uri(), tmp_path / "chromium", tmp_path / "report.png", (1400, 2600))
    assert page.attr("data-ready") == "1"
    assert page.errors() == [], page.errors()
    drawn = [c for c in page.canvases() if c[0] > 100 and c[1] > 100]
    assert len(drawn) == 3 + 2 * len(stored), page.canvases()  # comparison x3, timeline + distribution per target
    for key, rs in stored.items():
        assert f'<tr data-target="{key}"><td><a href="#t-{key.replace("/", "_")}">{key}</a></td><td class="num">{len(rs)}</td>' \
            in page.dom, key
    assert "No scheduled capacity sweep ran in this range" in page.dom
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_report_markdown_summary(seeded) -> None:  # type: ignore[no-untyped-def]
    cfg, stored = seeded
    r = cli("report", "-c", str(cfg), "--since", "3d", "--format", "md")
    assert r.returncode == 0, r.stderr
    rows = {line.split("|")[1].strip(" `"): [c.strip() for c in line.split("|")[2:-1]]
            for line in r.stdout.splitlines() if line.startswith("| `")}
    assert set(rows) == set(stored)
    slow = stored["p1/m-slow/short"]
    failed = sum(1 for x in slow if not x.ok)
    probes, avail, *_rest, errors, cost = rows["p1/m-slow/short"]
    assert int(probes) == len(slow)
    assert avail == f"{(len(slow) - failed) / len(slow):.2%}"
    assert errors == f"http_error {failed}" and cost == "–"
    fast = stored["p1/m-fast/short"]
    want_cost = sum(x.input_tokens * 1.0 + x.output_tokens * 2.0 for x in fast) / 1e6  # type: ignore[operator]
    assert rows["p1/m-fast/short"][-1] == f"${want_cost:.4f}"
    p50 = statistics.median(x.ttft for x in fast)  # type: ignore[type-var]
    assert rows["p1/m-fast/short"][2] == f"{p50 * 1000:.0f} ms"
    only = cli("report", "-c", str(cfg), "--format", "md", "--target", "p2/m-x")
    assert only.returncode == 0 and "p2/m-x/short" in only.stdout and "p1/" not in only.stdout


SIM_CONFIG = """
storage: {{path: "{db}"}}
simulator: {{enabled: true, scenario: "{scenario}"}}
defaults: {{timeout: 5s}}
providers:
  - name: sim-openai
    kind: openai_compatible
    base_url: "{{simulator}}/v1"
    models: [good, bad]
  - name: sim-anthropic
    kind: anthropic
    base_url: "{{simulator}}/v1"
    models: [claude]
"""


def test_export_rows_are_the_probe_json_of_each_stored_probe(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text("models:\n  bad: {faults: [{kind: http_500}]}\n")
    cfg = tmp_path / "vitals.yaml"
    cfg.write_text(SIM_CONFIG.format(db=db, scenario=scenario))
    settings = load_settings(cfg)
    printed = io.StringIO()
    results = asyncio.run(run_probes(settings, [], 3, 4, printer("json", printed)))
    store = Store(db)
    store.add_results(results)
    store.close()
    stored = sqlite3.connect(db).execute("SELECT COUNT(*) FROM results").fetchone()[0]
    assert stored == len(results) == 9

    want = sorted((json.loads(line) for line in printed.getvalue().splitlines()), key=lambda d: d["started_at"])
    assert {d["outcome"] for d in want} == {"ok", "http_error"}
    r = cli("export", "-c", str(cfg), "--format", "jsonl")
    assert r.returncode == 0, r.stderr
    got = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(got) == stored
    assert [list(d) for d in got] == [list(JSON_FIELDS)] * stored  # the same names, in the same order
    assert sorted(got, key=lambda d: d["started_at"]) == want

    out = tmp_path / "probes.csv"
    r = cli("export", "-c", str(cfg), "--format", "csv", "--since", "1h", "--out", str(out))
    assert r.returncode == 0 and f"{stored} probes" in r.stderr
    rows = list(csv.reader(out.open()))
    assert rows[0] == list(JSON_FIELDS) and len(rows) == stored + 1
    by_time = {d["started_at"]: d for d in want}
    for row in rows[1:]:
        expect = by_time[row[JSON_FIELDS.index("started_at")]]
        for name, cell in zip(JSON_FIELDS, row, strict=True):
            v = expect[name]
            if v is None:
                assert cell == "", name
            elif isinstance(v, float):
                assert float(cell) == v, name
            else:
                assert cell == str(v), name

    only = cli("export", "-c", str(cfg), "--format", "jsonl", "--target", "sim-openai/bad")
    lines = [json.loads(x) for x in only.stdout.splitlines()]
    assert len(lines) == 3 and all(d["model"] == "bad" and d["outcome"] == "http_error" for d in lines)


def test_report_and_export_reject_bad_config_and_arguments(seeded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg, _ = seeded
    missing = tmp_path / "missing.yaml"
    missing.write_text(CONFIG.format(db=tmp_path / "nowhere" / "state.db"))
    cases = [
        (["export", "-c", str(cfg), "--format", "jsonl", "--since", "soon"], "--since"),
        (["export", "-c", str(cfg), "--format", "jsonl", "--target", "p1"], "PROVIDER/MODEL"),
        (["export", "-c", str(cfg), "--format", "jsonl", "--target", "p1/nope"], "no probe of it stored"),
        (["export", "-c", str(cfg), "--format", "xml"], "invalid choice"),
        (["export", "-c", str(cfg)], "--format"),
        (["export", "-c", str(missing), "--format", "csv"], "no probe store"),
        (["export", "-c", str(tmp_path / "absent.yaml"), "--format", "csv"], "cannot read"),
        (["report", "-c", str(cfg), "--since", "0s"], "--since"),
        (["report", "-c", str(missing)], "no probe store"),
    ]
    for args, message in cases:
        r = cli(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert message in r.stderr, (args, r.stderr)
        assert r.stdout == "", args
    assert not (tmp_path / "nowhere").exists()  # a mistyped path is not created as an empty store


def test_exported_probes_replayed_by_detect_page_where_the_daemon_did(tmp_path: Path) -> None:
    """"Would this have paged?": a target's probes every 5 minutes (a heavy tail, failed
    probes, a 2x step on the last day) exported as CSV and replayed with `detect --probes`
    on their `started_at` and `ttft` columns page exactly where the daemon's detector, fed
    the same results, does."""
    import numpy as np

    from detector.service import Detector, DetectorConfig

    rng = np.random.default_rng(5)
    n = 4 * 288
    ttft = 0.4 * np.exp(rng.normal(0, 0.12, n))
    tail = rng.random(n) < 0.02
    ttft[tail] *= 1.5 * (1 + rng.pareto(1.5, tail.sum()))
    ttft[3 * 288 + 100:] *= 2.0
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=5)
    results = []
    for i in range(n):
        at = start + timedelta(minutes=5 * i)
        if i % 50 == 7:  # failed: no latency, stored and exported all the same
            r = result(provider="p1", model="m-fast", started_at=at, outcome=Outcome.HTTP_ERROR)
            r = ProbeResult(**{**{f: getattr(r, f) for f in r.__dataclass_fields__}, "ttft": None, "e2e": None,
                               "status_code": 503, "error": "HTTP 503: overloaded"})
        else:
            r = result(float(ttft[i]), provider="p1", model="m-fast", started_at=at)
        results.append(r)
    db = tmp_path / "state.db"
    store = Store(db)
    store.add_results(results)
    store.close()
    cfg = tmp_path / "vitals.yaml"
    cfg.write_text(CONFIG.format(db=db))

    det = Detector(DetectorConfig(metrics=["ttft"]))
    daemon, was = [], False
    for r in results:
        det.observe(r)
        now = det.evaluate(now=r.started_at.timestamp())[(r.target, "ttft")].anomalous
        if now and not was and r.ttft is not None:
            daemon.append(r.started_at)
        was = now
    assert len(daemon) == 1 and daemon[0] >= start + timedelta(minutes=5 * (3 * 288 + 100)), daemon

    probes = tmp_path / "probes.csv"
    r = cli("export", "-c", str(cfg), "--since", "6d", "--target", "p1/m-fast", "--format", "csv", "--out", str(probes))
    assert r.returncode == 0, r.stderr
    done = cli("detect", "--probes", "--time-column", "started_at", "--value-column", "ttft", str(probes))
    assert done.returncode == 0, done.stderr
    assert f"{sum(1 for x in results if x.ttft is None)} rows without a value skipped" in done.stderr
    table = list(csv.reader(done.stdout.splitlines()))
    assert table[0] == ["timestamp", "value", "score", "anomalous", "onset"]
    pages = [datetime.fromisoformat(row[0]) for row in table[1:] if row[4] == "1"]
    assert pages == daemon
    # without --probes a row without a value is an unreadable input, as it always was
    agg = cli("detect", "--time-column", "started_at", "--value-column", "ttft", str(probes))
    assert agg.returncode == 2 and ":9: value '' is not a number" in agg.stderr
