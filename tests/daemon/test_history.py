"""History queries (bounded whatever the range) and the per-target state of /api/v1/status."""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.result import Outcome, ProbeResult
from core.store import Store
from daemon import history
from daemon.config import load_settings
from daemon.process import Daemon
from daemon.status import state_of
from tests.factories import result


def failed(at: datetime, model: str = "m") -> ProbeResult:
    return ProbeResult(provider="p", model=model, probe="short", region="local", started_at=at,
                       outcome=Outcome.TIMEOUT, error="no first byte within 30 s")


def test_probes_are_downsampled_with_every_failure_kept(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rs = [failed(t0 + timedelta(seconds=i)) if i % 200 == 0 else result(0.1 + (i % 5) * 0.01, started_at=t0 + timedelta(seconds=i))
          for i in range(10_000)]
    store.add_results(rs)
    since, until = t0.timestamp(), t0.timestamp() + 10_000
    with store.reading() as conn:
        full = history.probes(conn, "p/m/short", since, until, max_points=20_000)
        small = history.probes(conn, "p/m/short", since, until, max_points=1000)
    assert full["downsampled_bucket_seconds"] is None and len(full["probes"]["t"]) == 10_000
    p = small["probes"]
    assert small["count"] == 10_000 and len(p["t"]) <= 1000
    assert p["t"] == sorted(p["t"])
    assert p["outcome"].count("timeout") == 50  # every failure, one point each
    assert sum(n for n, o in zip(p["n"], p["outcome"], strict=True) if o == "ok") == 9_950
    assert all(0.1 <= v <= 0.14 for v, o in zip(p["ttft"], p["outcome"], strict=True) if o == "ok")


def test_quantile_series_is_bounded_and_right(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    # bucket k of 15 minutes holds ttft k/10 .. k/10 + 0.09 (ten probes)
    rs = [result(k / 10 + j / 100, started_at=t0 + timedelta(minutes=15 * k, seconds=j)) for k in range(8) for j in range(10)]
    store.add_results([*rs, result(0.5, model="other", started_at=t0)])
    start = t0.timestamp()
    with store.reading() as conn:
        q = history.quantile_series(conn, "ttft", start, start + 2 * 3600 - 1, 900, ["p/m"])
        wide = history.quantile_series(conn, "ttft", start - 30 * 86400, start + 7200, 1.0)
    assert q["bucket_seconds"] == 900 and len(q["t"]) == 8
    s = q["series"]["p/m/short"]
    assert s["n"] == [10] * 8
    for k in range(8):
        assert abs(s["p50"][k] - (k / 10 + 0.045)) < 1e-9
    assert "p/other/short" not in q["series"]
    assert len(wide["t"]) <= history.MAX_BUCKETS + 1 and set(wide["series"]) == {"p/m/short", "p/other/short"}


def test_availability_counts_match_a_full_count(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    rng = random.Random(7)
    now = datetime(2026, 3, 4, 12, 34, 56, tzinfo=UTC)
    rs = []
    for model in ("a", "b"):
        for _ in range(3000):
            at = now - timedelta(seconds=rng.uniform(0, 8 * 86400))
            rs.append(result(started_at=at, model=model) if rng.random() < 0.9 else failed(at, model))
    store.add_results(rs)
    windows = {"24h": 86400.0, "7d": 7 * 86400.0}
    avail = history.Availability(windows)

    def brute(at: float) -> dict[str, dict[str, tuple[int, int]]]:
        out: dict[str, dict[str, tuple[int, int]]] = {}
        for name, w in windows.items():
            for r in rs:
                t = r.started_at.timestamp()
                if at - w <= t < at + 1.0:
                    n, ok = out.setdefault(r.target, {}).get(name, (0, 0))
                    out[r.target][name] = (n + 1, ok + r.ok)
        return out

    t = now.timestamp()
    with store.reading() as conn:
        got = avail(conn, t)
    want = brute(t)
    assert {k: {w: (v["probes"], v["ok"]) for w, v in per.items()} for k, per in got.items()} == want
    # later in the same hour: the hours kept, the new probes counted
    extra = [failed(now + timedelta(seconds=30), "a")]
    store.add_results(extra)
    rs += extra
    with store.reading() as conn:
        got = avail(conn, t + 60)
    assert got["p/a/short"]["24h"]["probes"] == brute(t + 60)["p/a/short"]["24h"][0]


def test_target_state_agrees_with_alerts_then_probes(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"""
storage: {{path: "{tmp_path}/s.db"}}
defaults: {{interval: 10s, timeout: 5s}}
providers: [{{name: p, kind: openai_compatible, base_url: "http://127.0.0.1:9/v1", models: [m]}}]
""")
    d = Daemon(load_settings(cfg), str(cfg), str(cfg))
    key = "p/m/short"
    now = datetime.now(UTC).timestamp()

    def firing(muted: str | None = None) -> dict[str, object]:
        return {"state": "firing", "muted": muted}

    assert state_of(d, key, [], now, 5.0) == "pending-first-probe"
    d.bookkeeping.last[key] = result(provider="p", model="m", started_at=datetime.fromtimestamp(now - 2, UTC))
    assert state_of(d, key, [], now, 5.0) == "ok"
    assert state_of(d, key, [firing()], now, 5.0) == "firing"
    assert state_of(d, key, [firing("silenced")], now, 5.0) == "silenced"
    assert state_of(d, key, [firing("silenced"), firing()], now, 5.0) == "firing"
    assert state_of(d, key, [{"state": "pending", "muted": None}], now, 5.0) == "pending"
    d.bookkeeping.last[key] = failed(datetime.fromtimestamp(now - 2, UTC))
    assert state_of(d, key, [], now, 5.0) == "failing"
    # 3 intervals (30 s) past the last probe's deadline (start + 5 s timeout): stale
    d.bookkeeping.last[key] = result(provider="p", model="m", started_at=datetime.fromtimestamp(now - 34, UTC))
    assert state_of(d, key, [], now, 5.0) == "ok"
    d.bookkeeping.last[key] = result(provider="p", model="m", started_at=datetime.fromtimestamp(now - 36, UTC))
    assert state_of(d, key, [], now, 5.0) == "stale"
    assert state_of(d, key, [firing()], now, 5.0) == "firing"
    d.store.close()


def test_readonly_store_refuses_what_is_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(history.HistoryError, match="no probe store"), history.open_readonly(tmp_path / "absent.db"):
        pass
    assert not (tmp_path / "absent.db").exists()
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE x (y)").connection.commit()
    with pytest.raises(history.HistoryError, match="not an llm-vitals store"), history.open_readonly(other):
        pass


def test_quantile_cache_reads_only_new_buckets(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    # mid-bucket, so the probe added at now + 1 lands in the last bucket both reads share
    # (at a wall clock within a second of a bucket edge it opened a bucket of its own)
    now = datetime.now(UTC).timestamp() // 900 * 900 + 450
    rs = [result(0.1 + (i % 9) * 0.02, model=m, started_at=datetime.fromtimestamp(now - i * 60, UTC))
          for i in range(24 * 60) for m in ("a", "b")]
    store.add_results(rs)
    cache = history.QuantileCache("ttft")
    with store.reading() as conn:
        got = cache(conn, now - 86400, now, 900)
        assert got == history.quantile_series(conn, "ttft", now - 86400, now, 900)
    assert len(got["series"]["p/a/short"]["n"]) in (97, 98)
    # settled buckets are not read again: gone from the store, still served; the newest are
    store.execute("DELETE FROM results WHERE started_at_ns < ?", (int((now - 3600) * 1e9),))
    store.add_results([result(5.0, model="a", started_at=datetime.fromtimestamp(now + 1, UTC))])
    with store.reading() as conn:
        again = cache(conn, now - 86400, now + 2, 900, ["p/a"])
    assert set(again["series"]) == {"p/a/short"}
    a = again["series"]["p/a/short"]
    assert a["n"][:10] == got["series"]["p/a/short"]["n"][:10] and a["n"][0] > 0
    assert a["p95"][-1] > got["series"]["p/a/short"]["p95"][-1]  # the new 5 s probe
