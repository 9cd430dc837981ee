"""daemon.exposition.render writes exactly what prometheus_client's generate_latest
writes for the daemon's registry (compact families, quantile summaries, plain metrics),
including label values that need escaping."""

from __future__ import annotations

from prometheus_client import generate_latest

from core.aggregator import Aggregator
from core.result import Outcome
from daemon.exposition import render
from daemon.metrics import Metrics, QuantileCollector
from tests.factories import result


def _filled() -> Metrics:
    m = Metrics(detail="full")
    agg = Aggregator()
    m.registry.register(QuantileCollector(agg.snapshot, agg.labels.get))
    odd = 'we"ird\\model\nname'
    for i, model in enumerate(["a", "b", odd, "zz"]):
        for k in range(3):
            r = result(0.2 + 0.1 * k + i, model=model, provider="p,q=1", itls=(0.01, 0.2, 7.0), output_tokens=5)
            m.observe(r, cost_usd=0.001)
            agg.observe(r)
    m.observe(result(1.0, model="a", outcome=Outcome.TIMEOUT))
    m.anomaly.labels("p", "a", "short", "local", "ttft").set(0.5)
    m.queue_depth.labels("collector").set(3)
    m.scheduler_lag.observe(0.02)
    return m


def test_render_is_byte_identical_to_generate_latest() -> None:
    m = _filled()
    fast, slow = render(m.registry), generate_latest(m.registry)
    assert 'model="we\\"ird\\\\model\\nname"' in fast.decode()
    assert fast == slow


def test_render_after_forget_and_on_an_empty_registry() -> None:
    empty = Metrics()
    assert render(empty.registry) == generate_latest(empty.registry)
    m = _filled()
    m.forget({"provider": "p,q=1", "model": "b", "probe": "short", "region": "local"})
    assert 'llm_vitals_probe_ttft_seconds_bucket{le="0.05",model="b"' not in render(m.registry).decode()
    assert render(m.registry) == generate_latest(m.registry)


def test_openmetrics_is_what_prometheus_client_writes(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import prometheus_client.metrics as pm
    from prometheus_client.openmetrics.exposition import generate_latest as om_latest

    from daemon.exposition import render_openmetrics

    for created in (False, True):  # the daemon runs without _created; with it, the slow path
        monkeypatch.setattr(pm, "_use_created", created)
        m = _filled()
        assert render_openmetrics(m.registry) == om_latest(m.registry)


def test_render_body_is_the_same_text_gzipped_or_not_and_hands_the_loop_back() -> None:
    """/metrics renders on the event loop in slices: the bytes are render()'s (and
    render_openmetrics()'s), gzip framing when asked, and other tasks run in between."""
    import asyncio
    import gzip

    from daemon.exposition import render_body, render_openmetrics
    from tests.factories import LoopTicker

    m = _filled()
    for i in range(300):  # enough rows for several chunks per family
        m.observe(result(0.3, model=f"many-{i}", provider="bulk"), cost_usd=0.001)

    async def go() -> list[bytes]:
        async with LoopTicker() as ticker:
            out = [await render_body(m.registry, om, gz, slice_s=0.0) for om in (False, True) for gz in (False, True)]
        assert ticker.ticks > 10  # every piece handed the loop back (slice 0)
        return out

    plain, gz, om, om_gz = asyncio.run(go())
    assert plain == render(m.registry)
    assert gzip.decompress(gz) == plain
    assert om == render_openmetrics(m.registry) and om.endswith(b"# EOF\n")
    assert gzip.decompress(om_gz) == om


def test_go_float_writes_what_float_to_go_string_writes() -> None:
    import random

    from prometheus_client.utils import floatToGoString

    from daemon.exposition import go_float

    values: list[float] = [0.0, -0.0, 1.0, 20.0, 123456.0, 999999.9, 1234567.0, -1234567.0, 1e6, 1e-5, 1e16,
                           1e22, float("inf"), float("-inf"), float("nan"), 1.796275647082181e09, 0.1]
    rnd = random.Random(7)
    for _ in range(20000):
        v = rnd.choice((-1, 1)) * 10 ** rnd.uniform(-30, 30)
        values += [v, float(round(v)) if abs(v) < 1e18 else v, float(rnd.randint(0, 10 ** rnd.randint(0, 12)))]
    assert [go_float(v) for v in values] == [floatToGoString(v) for v in values]
    assert go_float(5) == "5.0"  # an int, as floatToGoString takes it  # type: ignore[arg-type]
