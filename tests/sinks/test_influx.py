"""The InfluxDB sink against real servers: InfluxDB 1.x (InfluxQL read-back, outage,
restart) and the v2 write path against VictoriaMetrics."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.result import Outcome
from core.store import Store
from daemon.config import InfluxConfig
from daemon.metrics import Metrics
from daemon.sinks.influx import InfluxSink
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
        sink.observe(r)
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
        sink.observe(r)
    await wait_for(lambda: len(influx.query("SELECT ttft FROM probe")) == 30)
    influx.stop()
    for r in batch[30:60]:
        sink.observe(r)
    await asyncio.sleep(1.5)
    assert sink.health()["ok"] is False and sink.health()["spooled"] == 30
    influx.start()
    for r in batch[60:]:
        sink.observe(r)
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
        sink.observe(r)
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
    sink = InfluxSink(v1(influx.url), Store(tmp_path / "s.db"), m)
    await sink.start()
    for _ in range(5):
        sink._push("probe,provider=p this is not line protocol")
    await wait_for(lambda: m.registry.get_sample_value(
        "llm_vitals_sink_points_total", {"sink": "influxdb", "state": "rejected"}) == 5)
    await sink.stop(2)
    assert sink.health()["spooled"] == 0


def points(m: Metrics, state: str) -> float:
    return m.registry.get_sample_value("llm_vitals_sink_points_total", {"sink": "influxdb", "state": state}) or 0.0


async def test_a_missing_database_is_retried_not_dropped(influx: InfluxDB1, tmp_path: Path) -> None:
    """404 `database not found` is the server's state (being created, restored), not bad
    points: they were dropped (93 of 190 while the database was missing for 20 s)."""
    m = Metrics()
    sink = InfluxSink(v1(influx.url).model_copy(update={"database": "created_later"}), Store(tmp_path / "s.db"), m)
    await sink.start()
    for r in results(60, datetime(2026, 11, 20, 15, 0, tzinfo=UTC)):
        sink.observe(r)
    await wait_for(lambda: points(m, "retried") >= 60)
    h = sink.health()
    assert h["ok"] is False and "404" in h["error"] and "database not found" in h["error"]
    assert points(m, "rejected") == 0 and h["spooled"] == 60
    assert (m.registry.get_sample_value("llm_vitals_sink_errors_total", {"sink": "influxdb"}) or 0) >= 1
    influx.create_db("created_later")
    await wait_for(lambda: len(influx.query("SELECT ttft FROM probe", db="created_later")) == 60, timeout=30)
    await sink.stop(5)
    assert sink.health()["ok"] is True and points(m, "rejected") == 0 and points(m, "dropped") == 0


def full_store(path: Path) -> Store:
    """A store that cannot grow (SQLITE_FULL, as on a full disk): the spool table exists,
    every page it would need is refused."""
    store = Store(path)
    from daemon.sinks.influx_spool import Spool

    Spool(store, "influxdb", 1000)
    (pages,) = store.execute("PRAGMA page_count")[0]
    store.execute(f"PRAGMA max_page_count = {int(pages)}")
    return store


async def test_a_full_store_loses_no_point_to_a_healthy_database(influx: InfluxDB1, tmp_path: Path) -> None:
    """With the local store full, 288 of 732 points never reached a healthy influxd, the
    error counter at 0 and the sink `ok`."""
    import sqlite3

    m = Metrics()
    store = full_store(tmp_path / "s.db")
    with pytest.raises(sqlite3.OperationalError, match="full"):
        store.add_results(results(50, datetime(2026, 11, 20, 16, 0, tzinfo=UTC)))
    sink = InfluxSink(v1(influx.url), store, m)
    await sink.start()
    rs = results(732, datetime(2026, 11, 20, 16, 0, tzinfo=UTC))
    for i, r in enumerate(rs):
        sink.observe(r)
        if i % 100 == 0:
            await asyncio.sleep(0.05)
    await wait_for(lambda: len(influx.query("SELECT ttft FROM probe")) == 732, timeout=30)
    h = sink.health()
    assert h["ok"] is False and "full" in h["spool_error"], h
    assert (m.registry.get_sample_value("llm_vitals_sink_errors_total", {"sink": "influxdb"}) or 0) >= 1
    assert points(m, "dropped") == 0 and points(m, "written") == 732
    await sink.stop(5)


async def test_what_must_be_dropped_is_counted_logged_and_degrades_health(tmp_path: Path) -> None:
    """Store full and the database down: memory holds memory_max points, the rest go, never silently."""
    from structlog.testing import capture_logs

    from tests.conftest import free_port

    m = Metrics()
    sink = InfluxSink(v1(f"http://127.0.0.1:{free_port()}"), full_store(tmp_path / "s.db"), m, memory_max=100)
    with capture_logs() as logs:
        await sink.start()
        for r in results(250, datetime(2026, 11, 20, 17, 0, tzinfo=UTC)):
            sink.observe(r)
        await asyncio.sleep(1.0)
        h = sink.health()
        await sink.stop(1)
    assert h["ok"] is False and h["dropped"] == 150 and h["memory"] == 100, h
    assert points(m, "dropped") == 250  # 150 over the bound, then 100 in memory at stop
    events = [e["event"] for e in logs]
    assert "influxdb_points_dropped" in events and "influxdb_spool_unwritable_sending_from_memory" in events


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
            sink.observe(r)
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
    from tests.daemon.factories import CONFIG

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
