"""How late are our timestamps? The simulator (own process) logs when it wrote each token;
we compare our arrival stamps with it, side by side with a bare reference client (raw
asyncio socket, minimal parsing), at 1, 50 and 200 concurrent streams with Poisson starts,
for a text stream and for a tool-call stream (the first tool-call delta is the first token).

Targets (at 50 and 200 streams): our p50 lateness within 0.2 ms of the reference's, our
p99 within 1.25x of the reference's. Prints the figures; exits 1 when a target is missed.

`--pin` gives the simulator a core of its own and the clients the rest (it stands in for a
provider on another machine); by default the scheduler places them.

    .venv/bin/python bench/timing_accuracy.py [--phase-seconds 6] [--rounds 2] [--pin] [--streams text tool]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import itertools
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from percentile import pct  # noqa: E402  (bench/, beside this script)

from probes.clients import ClientPool  # noqa: E402
from probes.runner import run_probe  # noqa: E402
from probes.target import ProbeSpec, ProbeTarget, ProviderSpec, ToolSpec  # noqa: E402

SCENARIO = "defaults: {ttft: 300ms, itl: 30ms, jitter: 20%, tokens: 40}\n"
STREAM_SECONDS = 0.3 + 40 * 0.03
# perf_counter → wall clock, measured once (both stamps come from this process's clocks)
OFFSET_NS = time.time_ns() - time.perf_counter_ns()

Arrivals = dict[str, list[int]]  # request id → wall-clock ns of each token-bearing read



TOOL = ToolSpec("weather", "Current weather for a place")


async def ours(url: str, arrivals: Arrivals, tools: bool = False) -> None:
    stamps: list[int] = []
    spec = ProbeSpec(max_tokens=64, tools=(TOOL,) if tools else ())
    t = ProbeTarget(ProviderSpec("sim", "openai_compatible", url + "/v1"), "bench", spec, timeout=30)
    # Each stream is its own target (a monitor's concurrency comes from many targets).
    key = f"bench-{next(_SEQ) % 400}"
    r = await run_probe(CLIENTS.client_for(key), t, on_token=stamps.append)
    if r.request_id:
        arrivals[r.request_id] = [s + OFFSET_NS for s in stamps]


def _is_token(event: bytes) -> bool:
    if b'"tool_calls":[' in event:  # the call's first chunk names the tool; then argument text
        return b'"name"' in event or b'"arguments":""' not in event
    return b'"content":"' in event and b'"content":""' not in event


async def reference(url: str, arrivals: Arrivals, tools: bool = False) -> None:
    """A bare client: one socket, one request, stamp every read, count token events in it."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    req: dict[str, object] = {"model": "bench", "stream": True, "max_tokens": 64,
                              "messages": [{"role": "user", "content": "pong"}]}
    if tools:
        req["tools"] = [{"type": "function", "function": {"name": TOOL.name, "parameters": TOOL.parameters}}]
    body = json.dumps(req).encode()
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    stamps: list[int] = []
    buf = b""
    rid = None
    while True:
        data = await reader.read(65536)
        t = time.time_ns()
        if not data:
            break
        buf += data
        if rid is None and b"\r\n\r\n" in buf:
            head = buf.split(b"\r\n\r\n", 1)[0].decode().lower()
            rid = next((ln.split(":", 1)[1].strip() for ln in head.split("\r\n") if ln.startswith("x-request-id")), None)
        # every complete content event in what has arrived so far gets this read's stamp
        while b"\n\n" in buf:
            event, buf = buf.split(b"\n\n", 1)
            if _is_token(event):
                stamps.append(t)
            if b"[DONE]" in event:
                writer.close()
                if rid:
                    arrivals[rid] = stamps
                return
    writer.close()


async def phase(client: Callable[[str, Arrivals], Coroutine[object, object, None]], url: str, concurrency: int,
                seconds: float, rng: random.Random) -> Arrivals:
    # The daemon's GC policy (daemon/gcpolicy.py): the long-lived heap (here the arrivals
    # of earlier phases) is frozen, so a full collection does not stall the loop mid-phase.
    # Both clients run in this process under the same policy.
    gc.collect(1)
    gc.freeze()
    arrivals: Arrivals = {}
    rate = concurrency / STREAM_SECONDS  # Poisson starts keep `concurrency` streams in flight on average
    tasks: list[asyncio.Task[None]] = []
    end = time.monotonic() + seconds
    # Starts follow an absolute schedule: a client that keeps its loop busy gets the same
    # offered load (it starts late, then catches up) instead of silently fewer streams.
    next_start = time.monotonic()
    while next_start < end:
        tasks.append(asyncio.create_task(client(url, arrivals)))
        next_start += rng.expovariate(rate) if concurrency > 1 else STREAM_SECONDS + 0.05
        await asyncio.sleep(max(0.0, next_start - time.monotonic()))
    await asyncio.gather(*tasks)
    return arrivals


def pin(sim_pid: int, enabled: bool) -> str:
    """The simulator on a core of its own, the clients on the rest.

    It stands in for a provider on another machine. Unpinned on a small VM, the scheduler
    pulls the two processes (which wake each other on every token) onto one core
    (wake-affine) while the other idles: both clients then measure runqueue waits, and
    the heavier one tips into saturation first.
    """
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not enabled or len(cpus) < 2:
        return "cpu pinning: off"
    os.sched_setaffinity(sim_pid, {cpus[-1]})
    os.sched_setaffinity(0, set(cpus[:-1]))
    return f"cpu pinning: simulator on cpu {cpus[-1]}, clients on {cpus[:-1]}"


def lateness(arrivals: Arrivals, truth: dict[str, list[int]]) -> tuple[list[float], list[float]]:
    first: list[float] = []
    rest: list[float] = []
    for rid, stamps in arrivals.items():
        wrote = truth.get(rid)
        if not wrote or len(wrote) != len(stamps):
            continue
        first.append((stamps[0] - wrote[0]) / 1e6)
        rest.extend((a - w) / 1e6 for a, w in zip(stamps[1:], wrote[1:], strict=True))
    return first, rest


def load_truth(path: Path) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        out.setdefault(rec["request_id"], []).append(rec["t_ns"])
    return out


async def main_async(args: argparse.Namespace) -> int:
    global CLIENTS
    tmp = Path(tempfile.mkdtemp(prefix="llm-vitals-timing-"))
    (tmp / "s.yaml").write_text(SCENARIO)
    truth_path = tmp / "truth.jsonl"
    sim = subprocess.Popen([sys.executable, "-m", "probes.simulator", "--port", "0", "--scenario", str(tmp / "s.yaml"),
                            "--truth-log", str(truth_path), "--exit-with-parent"],  # gone with us, even if we crash
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO)
    assert sim.stdout is not None
    url = "http://" + json.loads(sim.stdout.readline())["listening"]
    print(pin(sim.pid, args.pin))
    CLIENTS = ClientPool()
    rng = random.Random(42)
    collected: dict[tuple[str, str, int], Arrivals] = {}
    try:
        for stream in args.streams:
            tools = stream == "tool"
            for conc in args.levels:
                for _ in range(args.rounds):
                    for name, fn in (("reference", reference), ("ours", ours)):
                        got = await phase(functools.partial(fn, tools=tools), url, conc, args.phase_seconds, rng)
                        collected.setdefault((stream, name, conc), {}).update(got)
    finally:
        await CLIENTS.aclose()
        assert sim.stdin is not None
        sim.stdin.close()  # --exit-with-parent: EOF on stdin stops it
        sim.wait(10)
    truth = load_truth(truth_path)
    missed = []
    print(f"{'stream':<6} {'streams':>7} {'client':<10} {'n':>6} | {'ttft late p50':>13} {'p99':>8} {'max':>8} | "
          f"{'itl late p50':>12} {'p99':>8} {'max':>8}   (ms)")
    for stream in args.streams:
        for conc in args.levels:
            res = {}
            for name in ("reference", "ours"):
                first, rest = lateness(collected[(stream, name, conc)], truth)
                res[name] = (first, rest)
                print(f"{stream:<6} {conc:>7} {name:<10} {len(first):>6} | {pct(first, .5):>13.3f} "
                      f"{pct(first, .99):>8.3f} {max(first or [0]):>8.3f} | {pct(rest, .5):>12.3f} "
                      f"{pct(rest, .99):>8.3f} {max(rest or [0]):>8.3f}")
            if not res["ours"][0] or len(res["ours"][0]) < len(res["reference"][0]) // 2:
                # a stream whose tokens we did not see (ttft never set) must not pass unmeasured
                print(f"        {stream} at {conc}: only {len(res['ours'][0])} of our streams matched the server's")
                missed.append(f"{stream}-count@{conc}")
            if conc >= 50:
                for kind, idx in (("ttft", 0), ("itl", 1)):
                    ref, our = res["reference"][idx], res["ours"][idx]
                    d50 = pct(our, .5) - pct(ref, .5)
                    r99 = pct(our, .99) / max(pct(ref, .99), 1e-9)
                    ok50, ok99 = d50 <= 0.2, r99 <= 1.25
                    print(f"        {stream} {kind} at {conc}: p50 ours-ref = {d50:+.3f} ms "
                          f"({'ok' if ok50 else 'MISSED'} <= 0.2), "
                          f"p99 ours/ref = {r99:.2f}x ({'ok' if ok99 else 'MISSED'} <= 1.25x)")
                    if not (ok50 and ok99):
                        missed.append(f"{stream}-{kind}@{conc}")
    if missed:
        print("MISSED: " + ", ".join(missed))
        return 1
    return 0


CLIENTS = ClientPool()
_SEQ = itertools.count()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--phase-seconds", type=float, default=6.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 50, 200])
    ap.add_argument("--streams", nargs="+", choices=("text", "tool"), default=["text", "tool"],
                    help="text replies, tool-call replies, or both (default)")
    ap.add_argument("--pin", action="store_true",
                    help="the simulator on a core of its own, the clients on the others")
    return asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
