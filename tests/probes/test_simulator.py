"""The bundled simulator, probed through run_probe for every protocol, fault and schedule."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from core.result import Outcome
from core.secrets import Secret
from probes.runner import new_client, run_probe
from probes.simulator import Scenario, Simulator
from probes.simulator.scenario import Degradation, ModelScript, Script
from probes.target import ProbeSpec, ProbeTarget, ProviderSpec
from tests.probes.factories import KINDS

TOL = 0.06


def target(sim: Simulator, kind: str, model: str = "m", *, headers: dict[str, str] | None = None,
           timeout: float = 5.0, key: str | None = "k", options: dict | None = None) -> ProbeTarget:  # type: ignore[type-arg]
    return ProbeTarget(
        ProviderSpec("sim", kind, sim.url + KINDS[kind], Secret(key) if key else None,
                     headers=tuple((headers or {}).items()), options=options or {}),
        model, ProbeSpec(), timeout=timeout,
    )


SCENARIO = Scenario(
    defaults=Script(ttft=0.2, itl=0.01, jitter=0, tokens=6),
    models={"thinker": ModelScript(reasoning_tokens=5, reasoning_itl=0.02)},
)


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_every_protocol_times_right(kind: str) -> None:
    async with Simulator(SCENARIO) as sim, new_client() as client:
        r = await run_probe(client, target(sim, kind))
        again = await run_probe(client, target(sim, kind, "thinker"))
    assert r.outcome is Outcome.OK, (kind, r.error)
    assert r.ttft == pytest.approx(0.2, abs=TOL)
    assert r.e2e == pytest.approx(0.25, abs=TOL)
    assert r.output_tokens == 6 and r.tokens_source.value == "usage"
    assert len(r.itls) == 5 and r.itl_p50 == pytest.approx(0.01, abs=0.01)
    assert r.request_id and r.request_id.startswith("sim-")
    assert again.outcome is Outcome.OK
    assert again.ttft == pytest.approx(0.2, abs=TOL)
    assert again.ttft_content == pytest.approx(0.3, abs=TOL)  # 5 reasoning tokens, 20 ms apart
    # the simulator's own write time of the first token is at or before our arrival stamp
    truth = [rec for rec in sim.truth.records if rec["request_id"] == r.request_id and rec["index"] == 0]
    ours_ns = r.started_at.timestamp() * 1e9 + r.ttft * 1e9
    # (after the write began: t_ns, stamped when it returned, is late when this process was
    # paused between the two on a busy machine)
    assert truth and ours_ns - truth[0]["write_ns"] >= -2e6 and ours_ns - truth[0]["t_ns"] < 20e6


@pytest.mark.parametrize(("fault", "outcome", "kinds"), [
    ("http_429", Outcome.RATE_LIMITED, ["openai", "anthropic", "gemini", "bedrock"]),
    ("http_500", Outcome.HTTP_ERROR, ["openai", "ollama"]),
    ("http_503", Outcome.HTTP_ERROR, ["openai_responses"]),
    ("http_529", Outcome.HTTP_ERROR, ["anthropic"]),
    ("truncate", Outcome.STREAM_ERROR, ["openai", "anthropic", "gemini", "ollama", "bedrock", "openai_responses"]),
    ("disconnect", Outcome.STREAM_ERROR, ["openai"]),
    ("malformed_json", Outcome.STREAM_ERROR, ["openai", "gemini", "ollama", "bedrock"]),
    ("error_event", Outcome.STREAM_ERROR, ["openai", "anthropic", "gemini", "ollama", "openai_responses"]),
    ("error_event", Outcome.RATE_LIMITED, ["bedrock"]),  # a mid-stream throttlingException frame
    ("bad_crc", Outcome.STREAM_ERROR, ["bedrock"]),
])
async def test_faults_become_the_right_outcome(fault: str, outcome: Outcome, kinds: list[str]) -> None:
    async with Simulator(SCENARIO) as sim, new_client() as client:
        for kind in kinds:
            r = await run_probe(client, target(sim, kind, headers={"x-sim-fault": fault}))
            assert r.outcome is outcome, (kind, fault, r.error)
            assert r.error
            if fault == "http_429":
                assert r.retry_after == 2.0 and r.status_code == 429
            if fault == "bad_crc":
                assert "checksum mismatch" in r.error.lower()


async def test_stalls_and_slow_headers() -> None:
    async with Simulator(SCENARIO) as sim, new_client() as client:
        before = await run_probe(client, target(sim, "openai", headers={"x-sim-fault": "stall_before_headers"}, timeout=0.5))
        mid = await run_probe(client, target(sim, "anthropic", headers={"x-sim-fault": "stall_mid_stream"}, timeout=0.6))
        slow = await run_probe(client, target(sim, "openai", headers={"x-sim-fault": "slow_headers",
                                                                       "x-sim-fault-duration": "300ms"}))
    assert before.outcome is Outcome.TIMEOUT and before.ttfb is None
    assert mid.outcome is Outcome.TIMEOUT and mid.ttft is not None
    assert slow.outcome is Outcome.OK and slow.ttfb == pytest.approx(0.3, abs=TOL)
    assert slow.ttft == pytest.approx(0.5, abs=TOL)


async def test_schedule_multiplies_ttft_inside_the_window() -> None:
    sc = Scenario(defaults=Script(ttft=0.1, itl=0.005, jitter=0, tokens=3),
                  schedule=[Degradation(at=0.5, duration=1.0, models="slow-*", ttft_factor=4)])
    async with Simulator(sc) as sim, new_client() as client:
        early = await run_probe(client, target(sim, "openai", "slow-a"))
        await asyncio.sleep(0.6 - early.e2e)  # type: ignore[operator]
        during, other = await asyncio.gather(run_probe(client, target(sim, "openai", "slow-a")),
                                             run_probe(client, target(sim, "openai", "fast-a")))
        await asyncio.sleep(1.0)
        after = await run_probe(client, target(sim, "openai", "slow-a"))
    assert early.ttft == pytest.approx(0.1, abs=TOL)
    assert during.ttft == pytest.approx(0.4, abs=TOL)
    assert other.ttft == pytest.approx(0.1, abs=TOL)
    assert after.ttft == pytest.approx(0.1, abs=TOL)


async def test_bedrock_sigv4_signature_verifies_server_side() -> None:
    creds = {"aws_access_key_id": Secret("AKIDEXAMPLE"), "aws_secret_access_key": Secret("wJalrXUtnFEMI/K7MDENG"),
             "aws_session_token": Secret("FwoGZXIvYXdzEXAMPLE"), "region": "eu-west-1"}
    async with Simulator(SCENARIO) as sim, new_client() as client:
        r = await run_probe(client, target(sim, "bedrock", "anthropic.claude-3-haiku-20240307-v1:0", key=None, options=creds))
        seen = sim.requests[-1]
    assert r.outcome is Outcome.OK, r.error
    assert seen["path"] == "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream"
    auth = seen["headers"]["authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") and "/eu-west-1/bedrock/aws4_request" in auth
    # Re-derive the signature from what the server received, with the same credentials.
    signed = [h for h in auth.split("SignedHeaders=")[1].split(",")[0].split(";")]
    url = sim.url + seen["path"]
    req = AWSRequest(method="POST", url=url, data=json.dumps(seen["body"]).encode(),
                     headers={h: seen["headers"][h] for h in signed if h not in ("x-amz-date",)})
    req.context["timestamp"] = seen["headers"]["x-amz-date"]
    signer = SigV4Auth(Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", "FwoGZXIvYXdzEXAMPLE"), "bedrock", "eu-west-1")
    req.headers["X-Amz-Date"] = seen["headers"]["x-amz-date"]
    canonical = signer.canonical_request(req)
    sts = signer.string_to_sign(req, canonical)
    assert auth.endswith("Signature=" + signer.signature(sts, req))


def test_simulate_subprocess_prints_listening_line_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "daemon.cli", "simulate", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = json.loads(proc.stdout.readline())
        host, port = line["listening"].rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) > 0
        import httpx

        r = httpx.post(f"http://{line['listening']}/v1/chat/completions", json={"model": "x", "stream": True})
        assert r.status_code == 200 and b"[DONE]" in r.content
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
        t = time.monotonic()
        assert time.monotonic() - t < 5
        assert proc.stderr is not None and b"Traceback" not in proc.stderr.read()


def test_bad_scenario_is_rejected(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "s.yaml"
    f.write_text("defaults: {ttft: 1 second}\nmodels: {a: {tokns: 3}}\n")
    res = subprocess.run([sys.executable, "-m", "probes.simulator", "--scenario", str(f)], capture_output=True, text=True)
    assert res.returncode == 2
    assert "defaults.ttft" in res.stderr and "tokns" in res.stderr


async def test_without_a_truth_log_the_simulator_keeps_only_the_latest_records() -> None:
    from probes.simulator.server import KEPT_RECORDS, KEPT_REQUESTS

    async with Simulator(SCENARIO) as sim, new_client() as client:
        for _ in range(3):
            r = await run_probe(client, target(sim, "openai"))
            assert r.outcome is Outcome.OK
        assert len(sim.requests) == 3 and len(sim.truth.records) == 18  # 6 tokens each
        for i in range(KEPT_RECORDS * 3):  # a long demo's worth of tokens
            sim.truth.token(f"r{i}", "m", "openai", i % 7, i)
        for i in range(KEPT_REQUESTS * 3):
            sim.requests.append({"path": "/", "headers": {}, "body": {}, "request_id": str(i)})
        assert len(sim.truth.records) == KEPT_RECORDS and sim.truth.records[-1]["t_ns"] == KEPT_RECORDS * 3 - 1
        assert len(sim.requests) == KEPT_REQUESTS
        r = await run_probe(client, target(sim, "openai"))
        assert r.outcome is Outcome.OK and sim.requests[-1]["request_id"] == r.request_id
