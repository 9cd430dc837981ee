"""The InfluxDB sink against real servers: InfluxDB 1.x (InfluxQL read-back, outage,
restart) and the v2 write path against VictoriaMetrics."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon.config import InfluxConfig
from daemon.metrics import Metrics
from daemon.sinks.influx import InfluxSink
from daemon.store import Store
from probes.result import Outcome
from tests.factories import result
from tests.servers import InfluxDB1, VictoriaMetrics


def results(n: int, start: datetime, model: str = "m") -> list:  # type: ignore[type-arg]
    return [result(0.2 + i / 1000, model=model, started_at=start + timedelta(seconds=i),
                   outcome=Outcome.OK if i % 5 else Outcome.TIMEOUT) for i in range(n)]


def v1(url: str) -> InfluxConfig:
    return InfluxConfig(url=url, api_version=1, database="llm_vitals", batch_size=50, flush_interval=0.2, timeout=2)


async def wait_for(pred, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if await asyncio.to_thread(pred):
            return
        await asyncio.sleep(0.2)
    raise AssertionError("condition not met in time")


@pytest.fixture
def influx(tmp_path: Path):  # type: ignore[no-untyped-def]
    db = InfluxDB1(tmp_path / "influx")
    db.create_db()
    yield db
    db.stop()


async def test_points_read_back_with_influxql(influx: InfluxDB1, tmp_path: Path) -> None:
    m = Metrics()
    sink = InfluxSink(v1(influx.url), Store(tmp_path / "s.db"), m)
    await sink.start()
    start = datetime(2026, 11, 20, 12, 0, 0, 123456, tzinfo=UTC)
    rs = results(20, start)
    for r in rs:
        sink.submit(r)
    await wait_for(lambda: len(influx.query("SELECT * FROM probe")) == 20)
    await sink.stop(5)
    rows = influx.query('SELECT ttft, e2e, output_tokens, status_code FROM probe WHERE "outcome" = \'ok\' GROUP BY *')
    assert len(rows) == 16
    first = min(rows, key=lambda r: r["time"])
    assert first["time"] == int(rs[1].started_at.timestamp() * 1e6) * 1000  # probe start, ns (µs precision)
    assert first["provider"] == "p" and first["model"] == "m" and first["probe"] == "short" and first["region"] == "local"
    assert first["ttft"] == pytest.approx(rs[1].ttft) and first["output_tokens"] == 10 and first["status_code"] == 200
    assert influx.query("SELECT count(ok) FROM probe WHERE outcome = 'timeout'")[0]["count"] == 4
    assert m.registry.get_sample_value("llm_vitals_sink_points_total", {"sink": "influxdb", "state": "written"}) == 20


async def test_outage_loses_nothing_and_duplicates_nothing(influx: InfluxDB1, tmp_path: Path) -> None:
    m = Metrics()
    sink = InfluxSink(v1(influx.url), Store(tmp_path / "s.db"), m)
    await sink.start()
    start = datetime(2026, 11, 20, 13, 0, tzinfo=UTC)
    batch = results(90, start)
    for r in batch[:30]:
        sink.submit(r)
    await wait_for(lambda: len(influx.query("SELECT ttft FROM probe")) == 30)
    influx.stop()
    for r in batch[30:60]:
        sink.submit(r)
    await asyncio.sleep(1.5)
    assert sink.health()["ok"] is False and sink.health()["spooled"] == 30
    influx.start()
    for r in batch[60:]:
        sink.submit(r)
    await wait_for(lambda: len(influx.query("SELECT ttft FROM probe")) == 90, timeout=30)
    await sink.stop(5)
    times = [row["time"] for row in influx.query("SELECT ttft FROM probe")]
    assert len(times) == len(set(times)) == 90
    assert sink.health()["ok"] is True


async def test_spooled_points_survive_a_restart(tmp_path: Path) -> None:
    from tests.conftest import free_port

    port = free_port()
    store_path = tmp_path / "s.db"
    sink = InfluxSink(v1(f"http://127.0.0.1:{port}"), Store(store_path), Metrics())
    await sink.start()
    for r in results(25, datetime(2026, 11, 20, 14, 0, tzinfo=UTC)):
        sink.submit(r)
    await asyncio.sleep(0.8)
    await sink.stop(1)  # the database was never there: everything stays spooled
    influx = InfluxDB1(tmp_path / "influx", port=port)
    try:
        influx.create_db()
        again = InfluxSink(v1(influx.url), Store(store_path), Metrics())
        assert again.health()["spooled"] == 25
        await again.start()
        await wait_for(lambda: len(influx.query("SELECT ttft FROM probe")) == 25)
        await again.stop(5)
    finally:
        influx.stop()


async def test_bad_data_is_dropped_not_retried_forever(influx: InfluxDB1, tmp_path: Path) -> None:
    m = Metrics()
    cfg = InfluxConfig(url=influx.url, api_version=1, database="no_such_db", batch_size=10, flush_interval=0.2)
    sink = InfluxSink(cfg, Store(tmp_path / "s.db"), m)
    await sink.start()
    for r in results(5, datetime(2026, 11, 20, 15, 0, tzinfo=UTC)):
        sink.submit(r)
    await asyncio.sleep(1.0)
    await sink.stop(2)
    assert m.registry.get_sample_value("llm_vitals_sink_points_total", {"sink": "influxdb", "state": "rejected"}) == 5
    assert sink.health()["spooled"] == 0


async def test_v2_write_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vm = VictoriaMetrics(tmp_path)
    monkeypatch.setenv("TEST_INFLUX_TOKEN", "tok-secret")
    try:
        cfg = InfluxConfig(url=vm.url, api_version=2, org="acme", bucket="llm_vitals", token_env="TEST_INFLUX_TOKEN",
                           batch_size=10, flush_interval=0.2)
        sink = InfluxSink(cfg, Store(tmp_path / "s.db"), Metrics())
        await sink.start()
        now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
        for r in results(12, now, model="v2model"):
            sink.submit(r)
        await asyncio.sleep(1.0)
        await sink.stop(5)
        series = []
        for _ in range(30):
            series = vm.export('probe_ttft{model="v2model"}')
            if sum(len(s["values"]) for s in series) == 12:
                break
            time.sleep(0.5)
        assert sum(len(s["values"]) for s in series) == 12, series
        tags = series[0]["metric"]
        assert tags["provider"] == "p" and tags["region"] == "local" and tags["probe"] == "short"
    finally:
        vm.stop()


def test_daemon_writes_probes_to_influxdb(influx: InfluxDB1, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    from tests.test_daemon import CONFIG

    cfg = CONFIG + f"influxdb: {{url: '{influx.url}', api_version: 1, database: llm_vitals, flush_interval: 500ms}}\n"
    d = daemon_factory(cfg)
    d.wait_ready()
    end = time.monotonic() + 20
    rows: list = []  # type: ignore[type-arg]
    while time.monotonic() < end:
        rows = influx.query("SELECT ttft FROM probe GROUP BY model")
        if {r["model"] for r in rows} >= {"fast-a", "fast-b", "claude-x"}:
            break
        time.sleep(0.5)
    assert {r["model"] for r in rows} >= {"fast-a", "fast-b", "claude-x"}
    assert d.stop() == 0
    # everything the daemon stored was flushed to InfluxDB at shutdown
    import sqlite3

    stored = sqlite3.connect(Path(d.config).parent / "state.db").execute("SELECT COUNT(*) FROM results").fetchone()[0]
    assert len(influx.query("SELECT ttft FROM probe")) == stored
