"""ClientPool against the bundled simulator over real sockets: a target probed less often
than the keep-alive expiry keeps no idle connection and still times every phase; one
probed more often reuses its connection."""

from __future__ import annotations

from typing import Any

import pytest

from core.result import Outcome, ProbeResult
from core.secrets import Secret
from probes.clients import ClientPool
from probes.runner import run_probe
from probes.simulator import Scenario, Simulator
from probes.simulator.scenario import Fault, Script
from probes.target import ProbeSpec, ProbeTarget, ProviderSpec

SCENARIO = Scenario(defaults=Script(ttft=0.05, itl=0.005, jitter=0, tokens=4))


def _target(sim: Simulator) -> ProbeTarget:
    return ProbeTarget(ProviderSpec("sim", "openai", sim.url + "/v1", Secret("k")), "m", ProbeSpec(), timeout=5.0)


def _connections(client: Any) -> int:
    """Connections the client's httpcore pool holds (open or idle)."""
    return len(client._transport._pool.connections)


async def _two_probes(interval: float) -> tuple[ProbeResult, int, ProbeResult]:
    """Two probes of one target probed every `interval`: (first, connections the client
    held between them, second)."""
    pool = ClientPool(keepalive_expiry=5.0)
    async with Simulator(SCENARIO) as sim:
        try:
            client = pool.client_for("t", interval=interval)
            first = await run_probe(client, _target(sim))
            held = _connections(client)
            second = await run_probe(pool.client_for("t", interval=interval), _target(sim))
        finally:
            await pool.aclose()
    return first, held, second


async def test_a_target_probed_less_often_than_the_expiry_keeps_no_idle_connection() -> None:
    first, held, second = await _two_probes(60.0)
    assert first.outcome is Outcome.OK and second.outcome is Outcome.OK, (first.error, second.error)
    assert held == 0
    # each probe connected, and its connect phase is measured
    assert first.connect is not None and first.connect > 0
    assert second.connect is not None and second.connect > 0


async def test_a_target_probed_within_the_expiry_reuses_its_connection() -> None:
    first, held, second = await _two_probes(1.0)
    assert first.outcome is Outcome.OK and second.outcome is Outcome.OK, (first.error, second.error)
    assert held == 1
    assert first.connect is not None
    assert second.connect == 0.0  # the kept connection: nothing to connect (timing.phases)


async def test_a_reload_across_the_expiry_swaps_the_client() -> None:
    pool = ClientPool(keepalive_expiry=5.0)
    async with Simulator(SCENARIO) as sim:
        try:
            keeping = pool.client_for("t", interval=1.0)
            await run_probe(keeping, _target(sim))
            swapped = pool.client_for("t", interval=60.0)
            again = pool.client_for("t", interval=60.0)
        finally:
            await pool.aclose()
    assert swapped is not keeping and again is swapped
    assert keeping.is_closed


async def test_a_finished_probe_leaves_no_reference_cycle() -> None:
    """A probe's response, streams and connection are freed by reference counting. The
    daemon freezes its heap (daemon/gcpolicy.py): a cycle still in flight then was never
    collected (17k objects after three minutes at 1,000 targets), and the young
    collections that found the rest took 10-25 ms of the loop."""
    import gc

    pool = ClientPool(keepalive_expiry=5.0)
    async with Simulator(SCENARIO) as sim:
        try:
            await run_probe(pool.client_for("t", interval=60.0), _target(sim))  # imports, caches
            gc.collect()
            gc.set_debug(gc.DEBUG_SAVEALL)
            try:
                for i in range(5):
                    r = await run_probe(pool.client_for(f"t{i}", interval=60.0), _target(sim))
                    assert r.outcome is Outcome.OK, r.error
                gc.collect()
                ours = [type(o) for o in gc.garbage
                        if type(o).__module__.split(".")[0] in ("httpx", "httpcore", "h11", "probes")]
            finally:
                gc.set_debug(0)
                gc.garbage.clear()
        finally:
            await pool.aclose()
    assert ours == []


@pytest.mark.parametrize("fault", ["refused", "disconnect", "truncate", "http_500", "stall_mid_stream"])
async def test_a_failed_probe_leaves_no_reference_cycle(fault: str) -> None:
    """Failures too: the GC policy freezes the heap every few seconds, and a cycle caught
    in flight then is never collected (a refused connection's error held the frame that
    raised it)."""
    import gc
    import socket

    faults = [] if fault == "refused" else [Fault(kind=fault, duration=5)]  # type: ignore[arg-type]
    scenario = Scenario(defaults=Script(ttft=0.01, itl=0.002, jitter=0, tokens=4, faults=faults))
    pool = ClientPool(keepalive_expiry=5.0)
    async with Simulator(scenario) as sim:
        url = sim.url
        if fault == "refused":
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
                url = f"http://127.0.0.1:{s.getsockname()[1]}"
        target = ProbeTarget(ProviderSpec("sim", "openai", url + "/v1", Secret("k")), "m", ProbeSpec(), timeout=1.0)
        try:
            await run_probe(pool.client_for("t", interval=60.0), target)  # imports, caches
            gc.collect()
            gc.set_debug(gc.DEBUG_SAVEALL)
            try:
                results = [await run_probe(pool.client_for(f"t{i}", interval=60.0), target) for i in range(3)]
                gc.collect()
                ours = [type(o) for o in gc.garbage
                        if (type(o).__module__.split(".")[0] in ("httpx", "httpcore", "h11", "probes")
                        and not type(o).__module__.startswith("probes.simulator"))
                        or isinstance(o, BaseException)]
            finally:
                gc.set_debug(0)
                gc.garbage.clear()
        finally:
            await pool.aclose()
    assert all(r.outcome is not Outcome.OK for r in results)
    assert ours == []
