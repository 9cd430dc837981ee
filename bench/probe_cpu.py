"""CPU per 64-token probe of run_probe against a bare asyncio socket client, in one process,
rounds interleaved: the probe path's share of issue 15's "<= 2x a bare client", without
the daemon's scheduler, consumers and scrapes, and steadier than one capacity run on a
shared machine (each round's figures come from the same minutes of machine load).

Both clients open a new connection per stream, as the daemon's once-a-minute targets do,
against the simulator in another process (capacity's scenario: 64 tokens, 15 ms apart).

    .venv/bin/python bench/probe_cpu.py [--rounds 4] [--seconds 8] [--concurrency 20]
    .venv/bin/python bench/probe_cpu.py --profile /tmp/probe.prof   # cProfile of the probe rounds
    .venv/bin/python bench/probe_cpu.py --layers   # also: our socket alone, and it plus the parsers

`--layers` adds two clients between the bare one and run_probe, sending the bare client's
request: `stamped` reads the response off our kernel-stamped socket stream (probes/netstream.py)
and only looks for the end, `parsed` also decodes the chunked body, the SSE framing and each
event (probes/chunked.py, probes/framing.py, the protocol's parse). What is left between
`parsed` and `probe` is httpx/httpcore/h11 sending the request and parsing the head, and the
probe's own setup, timeline and result.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from capacity import settings_for, start_simulator  # noqa: E402  (bench/, beside this script)
from timing_accuracy import reference  # noqa: E402

from core.result import ProbeResult  # noqa: E402
from probes.chunked import ChunkedDecoder  # noqa: E402
from probes.clients import ClientPool  # noqa: E402
from probes.framing import new_decoder  # noqa: E402
from probes.netstream import StampedBackend  # noqa: E402
from probes.registry import protocol_for  # noqa: E402
from probes.runner import run_probe  # noqa: E402


async def cpu_per_stream(one: Callable[[int], Awaitable[object]], concurrency: int, seconds: float,
                         profile: cProfile.Profile | None = None) -> float:
    """CPU ms per stream of `concurrency` workers each running `one` back to back."""
    done = 0

    async def worker(w: int, until: float) -> None:
        nonlocal done
        i = w
        while time.monotonic() < until:
            await one(i)
            done += 1
            i += concurrency

    gc.collect()
    if profile is not None:
        profile.enable()
    c0 = time.process_time()
    end = time.monotonic() + seconds
    await asyncio.gather(*(worker(w, end) for w in range(concurrency)))
    cpu = time.process_time() - c0
    if profile is not None:
        profile.disable()
    return cpu * 1000 / max(1, done)


def layer_clients(url: str) -> dict[str, Callable[[int], Awaitable[None]]]:
    """The `--layers` clients: the bare client's request over our socket stream, read raw
    (`stamped`), or decoded down to protocol events (`parsed`)."""
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps({"model": "bench", "stream": True, "max_tokens": 64,
                       "messages": [{"role": "user", "content": "pong"}]}).encode()
    request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    backend = StampedBackend()
    protocol = protocol_for("openai_compatible")

    async def stream(parse: bool) -> None:
        net = await backend.connect_tcp(host, int(port))
        await net.write(request)
        head: bytes | None = b""  # None once the response head is past
        chunked, sse = ChunkedDecoder(), new_decoder("sse", 1 << 20)
        state: dict[str, Any] = {}
        while data := await net.read(64 * 1024):
            if head is not None:
                head += data
                if b"\r\n\r\n" not in head:
                    continue
                data, head = head.split(b"\r\n\r\n", 1)[1], None
            if not parse:
                if b"[DONE]" in data:
                    break
                continue
            events = [protocol.parse(f, state) for f in sse.feed(chunked.feed(data))]
            if any(ev is not None and ev.terminal for ev in events):
                break
        await net.aclose()

    async def stamped(_i: int) -> None:
        await stream(False)

    async def parsed(_i: int) -> None:
        await stream(True)

    return {"stamped": stamped, "parsed": parsed}


async def run(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="llm-vitals-probe-cpu-"))
    scenario = tmp / "scenario.yaml"
    scenario.write_text(f"defaults: {{ttft: 300ms, itl: 15ms, jitter: 10%, tokens: {args.tokens}}}\n")
    sim, url = start_simulator(tmp / "truth.jsonl", scenario)
    settings = settings_for(url, 1000, 60.0, tmp / "state.db", 0, True)
    targets = settings.owned_targets(None)
    clients = ClientPool()
    results: list[ProbeResult] = []

    async def probe(i: int) -> None:
        t = targets[i % len(targets)]
        r = await run_probe(clients.client_for(t.key, 60.0), t)
        if len(results) < 100:
            results.append(r)

    async def bare(_i: int) -> None:
        await reference(url, {})

    layers = layer_clients(url) if args.layers else {}
    prof = cProfile.Profile() if args.profile else None
    await cpu_per_stream(probe, args.concurrency, 2.0)  # warm: imports, first clients
    await cpu_per_stream(bare, args.concurrency, 2.0)
    for client in layers.values():
        await cpu_per_stream(client, args.concurrency, 1.0)
    ratios = []
    for n in range(args.rounds):
        b = await cpu_per_stream(bare, args.concurrency, args.seconds)
        between = [f"{name} {await cpu_per_stream(client, args.concurrency, args.seconds):.3f} ms, "
                   for name, client in layers.items()]
        p = await cpu_per_stream(probe, args.concurrency, args.seconds, prof)
        ratios.append(p / b)
        print(f"round {n + 1}: bare {b:.3f} ms, {''.join(between)}probe {p:.3f} ms: {p / b:.2f}x", flush=True)
    bad = [r for r in results if not r.ok]
    print(f"median {statistics.median(ratios):.2f}x over {args.rounds} rounds; "
          f"{len(results) - len(bad)}/{len(results)} sampled probes ok"
          + (f" (first failure: {bad[0].outcome} {bad[0].error})" if bad else ""))
    await clients.aclose()
    assert sim.stdin is not None
    sim.stdin.close()
    sim.wait(10)
    if prof is not None:
        prof.dump_stats(args.profile)
    return 1 if bad else 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--tokens", type=int, default=64, help="tokens per stream (1: the per-probe part alone)")
    ap.add_argument("--layers", action="store_true", help="also time our socket stream alone, and with the parsers")
    ap.add_argument("--profile", default="", help="write a cProfile of the probe rounds here")
    args = ap.parse_args()
    from daemon import logs

    logs.configure("warning", json=True)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
