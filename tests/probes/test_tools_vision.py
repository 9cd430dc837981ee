"""Tool-call and vision probes against the simulator, for every protocol: the first
tool-call delta is the first token, a wrong tool or broken arguments is a mismatch, a
malformed tool-call delta is a stream_error, and every protocol carries the image."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import zlib
from pathlib import Path

import pytest

from core.result import Outcome
from probes.framing import SSEEvent
from probes.images import MAX_IMAGE_BYTES, ImageError, load_image
from probes.protocol import StreamProtocolError
from probes.registry import protocol_for
from probes.runner import new_client, run_probe
from probes.simulator import Scenario, Simulator
from probes.simulator.scenario import Script as SimScript
from probes.target import (
    Expectation,
    ImageSpec,
    ProbeSpec,
    ProbeTarget,
    ProviderSpec,
    Secret,
    ToolSpec,
)
from tests.probes.factories import DONE, FINISH, KINDS, ROLE_NULL, TOL, chunk, probe
from tests.replay import Script as ReplayScript

Script = ReplayScript

TTFT, ITL, TOKENS = 0.15, 0.02, 6
SCENARIO = Scenario(defaults=SimScript(ttft=TTFT, itl=ITL, jitter=0, tokens=TOKENS))
WEATHER = ToolSpec("weather", "Current weather for a place",
                   json.dumps({"type": "object", "properties": {"location": {"type": "string"}},
                               "required": ["location"]}))
CLOCK = ToolSpec("clock", "The time somewhere")


def tool_target(sim: Simulator, kind: str, headers: dict[str, str] | None = None,
                want: str = "weather") -> ProbeTarget:
    probe = ProbeSpec(name="tool", prompt="What is the weather in Florence?", max_tokens=64,
                      tools=(WEATHER, CLOCK), expect=Expectation(tool_call=want))
    return ProbeTarget(ProviderSpec("sim", kind, sim.url + KINDS[kind], Secret("k"),
                                    headers=tuple((headers or {}).items())), "m", probe, timeout=5)


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_tool_call_ttft_is_the_first_tool_delta(kind: str) -> None:
    async with Simulator(SCENARIO) as sim, new_client() as client:
        r = await run_probe(client, tool_target(sim, kind))
        offered = sim.requests[-1]["tools"]
    assert offered == ["weather", "clock"], (kind, offered)  # the request carried both tools
    assert r.outcome is Outcome.OK, (kind, r.error)
    # the first tool-call delta is written at TTFT; the stream ends (TOKENS - 1) x ITL later
    assert r.ttft is not None and r.ttft == pytest.approx(TTFT, abs=0.05), kind
    assert r.e2e is not None and r.e2e - r.ttft == pytest.approx(ITL * (TOKENS - 1), abs=0.05), kind
    truth = [rec for rec in sim.truth.records if rec["request_id"] == r.request_id and rec["index"] == 0]
    ours_ns = r.started_at.timestamp() * 1e9 + r.ttft * 1e9
    # (after the write began: t_ns, stamped when it returned, is late when this process was
    # paused between the two on a busy machine)
    assert truth and ours_ns - truth[0]["write_ns"] >= -2e6 and ours_ns - truth[0]["t_ns"] < 20e6, kind
    assert "Florence" in r.text  # arguments count as output (and as reply text)
    assert r.output_tokens


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_wrong_tool_is_a_content_mismatch(kind: str) -> None:
    async with Simulator(SCENARIO) as sim, new_client() as client:
        r = await run_probe(client, tool_target(sim, kind, {"x-sim-tool": "clock"}))
    assert r.outcome is Outcome.CONTENT_MISMATCH, (kind, r.error)
    assert r.error and "'clock'" in r.error and "expected 'weather'" in r.error
    assert r.ttft == pytest.approx(TTFT, abs=0.05)  # still timed


@pytest.mark.parametrize("kind", ["openai", "openai_responses", "anthropic", "bedrock"])
async def test_arguments_that_are_not_json_are_a_content_mismatch(kind: str) -> None:
    async with Simulator(SCENARIO) as sim, new_client() as client:
        r = await run_probe(client, tool_target(sim, kind, {"x-sim-tool-args": '{"location": "Flor'}))
    assert r.outcome is Outcome.CONTENT_MISMATCH, (kind, r.error)
    assert r.error and "not valid JSON" in r.error


async def test_no_tool_call_when_one_is_expected() -> None:
    async with Simulator(SCENARIO) as sim, new_client() as client:
        r = await run_probe(client, tool_target(sim, "openai", {"x-sim-tool": "none"}))
    assert r.outcome is Outcome.CONTENT_MISMATCH and r.error and "no tool call" in r.error


@pytest.mark.parametrize(("kind", "data", "field"), [
    ("openai", {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": 5}}]}}]},
     "tool_calls[].function.arguments"),
    ("openai", {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": "x", "function": {"name": "a"}}]}}]},
     "tool_calls[].index"),
    ("openai", {"choices": [{"index": 0, "delta": {"tool_calls": ["weather"]}}]}, "a tool call"),
    ("anthropic", {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta",
                                                                        "partial_json": {"a": 1}}},
     "delta.partial_json"),
    ("anthropic", {"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "name": 7}},
     "content_block.name"),
    ("openai_responses", {"type": "response.output_item.added", "output_index": 0,
                          "item": {"type": "function_call", "name": ["x"]}}, "item.name"),
    ("gemini", {"candidates": [{"content": {"parts": [{"functionCall": {"name": "weather", "args": "{}"}}]}}]},
     "functionCall.args"),
])
def test_malformed_tool_delta_is_a_stream_error(kind: str, data: dict, field: str) -> None:  # type: ignore[type-arg]
    proto = protocol_for(kind)
    with pytest.raises(StreamProtocolError, match="unexpected JSON shape") as info:
        proto.parse(SSEEvent(event="message", data=json.dumps(data)), {})
    assert field in str(info.value)


def test_malformed_ollama_and_bedrock_tool_deltas() -> None:
    from probes.framing import EventStreamFrame

    with pytest.raises(StreamProtocolError, match="tool_calls"):
        protocol_for("ollama").parse(json.dumps(
            {"message": {"tool_calls": [{"function": {"name": "w", "arguments": [1]}}]}, "done": False}), {})
    frame = EventStreamFrame(headers={":message-type": "event", ":event-type": "contentBlockStart"},
                             payload=json.dumps({"contentBlockIndex": 0, "start": {"toolUse": "weather"}}).encode())
    with pytest.raises(StreamProtocolError, match=r"start\.toolUse"):
        protocol_for("bedrock").parse(frame, {})


async def test_malformed_tool_delta_over_the_wire_is_a_stream_error() -> None:
    """Through run_probe: one recorded outcome with the reason, not a crash."""
    bad = chunk({"tool_calls": [{"index": 0, "function": {"name": "weather", "arguments": {"location": "x"}}}]})
    r, _ = await probe(Script(writes=[(0, ROLE_NULL), (0.05, bad), (0, FINISH + DONE)]))
    assert r.outcome is Outcome.STREAM_ERROR
    assert r.error and "tool_calls[].function.arguments is an object, expected a string" in r.error


async def test_openai_tool_call_ttft_at_the_name_not_the_arguments() -> None:
    """The role chunk (content null) is not a token; the chunk naming the function is."""
    start = chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                   "function": {"name": "weather", "arguments": ""}}]})
    empty = chunk({"tool_calls": [{"index": 0, "function": {"arguments": ""}}]})
    args = chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"location":"Florence"}'}}]})
    r, _ = await probe(Script(writes=[(0.05, ROLE_NULL), (0.2, start), (0.1, empty), (0.1, args),
                                      (0, chunk(choices=[{"index": 0, "delta": {}, "finish_reason": "tool_calls"}])
                                       + DONE)]))
    assert r.outcome is Outcome.OK, r.error
    assert r.ttft == pytest.approx(0.25, abs=TOL) and r.ttft_content == r.ttft
    assert r.token_chunks == 2 and r.finish_reason == "tool_calls"


# -- vision -------------------------------------------------------------------------

def png(width: int = 2, height: int = 2) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack("!I", len(data)) + kind + data + struct.pack("!I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack("!IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_vision_probe_carries_the_image_bytes(kind: str) -> None:
    data = png()
    probe = ProbeSpec(name="vision", prompt="What colour is this image?", image=ImageSpec("image/png", data))
    async with Simulator(SCENARIO) as sim, new_client() as client:
        t = ProbeTarget(ProviderSpec("sim", kind, sim.url + KINDS[kind], Secret("k")), "m", probe, timeout=5)
        r = await run_probe(client, t)
        seen = sim.requests[-1]
    assert r.outcome is Outcome.OK, (kind, r.error)
    assert len(seen["images"]) == 1, (kind, seen["body"])
    got = seen["images"][0]
    assert got["sha256"] == hashlib.sha256(data).hexdigest() and got["bytes"] == len(data), kind
    assert got["media_type"] in ("image/png", "png"), kind
    assert base64.b64encode(data).decode() not in json.dumps(seen["body"])  # the kept body is slimmed


@pytest.mark.parametrize(("head", "media"), [
    (png(), "image/png"), (b"\xff\xd8\xff\xe0" + b"\0" * 16, "image/jpeg"), (b"GIF89a" + b"\0" * 16, "image/gif"),
    (b"RIFF\x10\0\0\0WEBPVP8 " + b"\0" * 16, "image/webp"),
])
def test_images_are_typed_by_magic_bytes(tmp_path: Path, head: bytes, media: str) -> None:
    f = tmp_path / "picture.png"  # the extension is not believed
    f.write_bytes(head)
    assert load_image(f).media_type == media


@pytest.mark.parametrize(("content", "reason"), [
    (None, "no such file"), (b"", "empty"), (b"hello, not an image", "not a PNG"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * (MAX_IMAGE_BYTES + 1), "byte limit"),
])
def test_bad_images_are_refused(tmp_path: Path, content: bytes | None, reason: str) -> None:
    f = tmp_path / "x.png"
    if content is not None:
        f.write_bytes(content)
    with pytest.raises(ImageError, match=reason):
        load_image(f)


# -- config -------------------------------------------------------------------------

CONFIG = """
probes:
  - name: weather
    prompt: "What is the weather in Florence?"
    max_tokens: 64
    tools:
      - name: weather
        description: Current weather for a place
        parameters: {type: object, properties: {location: {type: string}}, required: [location]}
    expect: {tool_call: weather}
  - name: look
    prompt: "What colour is this image? One word."
    image: IMAGE
defaults: {probe: weather}
providers:
  - name: sim
    kind: openai
    base_url: http://127.0.0.1:9/v1
    models: [{name: m, probes: [weather, look]}]
"""


def test_config_tools_and_image_reach_the_probe_spec(tmp_path: Path) -> None:
    from daemon.config import load_settings

    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "red.png").write_bytes(png())
    f = tmp_path / "c.yaml"
    f.write_text(CONFIG.replace("IMAGE", "pics/red.png"))  # relative to the config file
    weather, look = (t.probe for t in load_settings(f).targets())
    assert [t.name for t in weather.tools] == ["weather"] and weather.expect and weather.expect.tool_call == "weather"
    assert weather.tools[0].parameters["required"] == ["location"]
    assert look.image is not None and look.image.data == png() and look.image.media_type == "image/png"


@pytest.mark.parametrize(("image", "edit", "reason"), [
    ("missing.png", None, "missing.png: no such file"),
    ("notes.png", b"just text", "notes.png: not a PNG, JPEG, GIF or WebP"),
    ("big.gif", b"GIF89a" + b"\0" * MAX_IMAGE_BYTES, "big.gif: 5242886 bytes is over the 5242880 byte limit"),
])
def test_config_bad_image_is_a_config_error(tmp_path: Path, image: str, edit: bytes | None, reason: str) -> None:
    import re
    import subprocess
    import sys

    if edit is not None:
        (tmp_path / image).write_bytes(edit)
    f = tmp_path / "c.yaml"
    f.write_text(CONFIG.replace("IMAGE", image))
    p = subprocess.run([sys.executable, "-m", "daemon.cli", "check", "--offline", "-c", str(f)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p.stderr
    # file, key, reason
    assert re.search(re.escape(f"{f}: probes[1] (look): image: ") + ".*" + re.escape(reason), p.stderr), p.stderr


def test_config_expected_tool_must_be_offered(tmp_path: Path) -> None:
    from daemon.config import ConfigError, load_settings

    (tmp_path / "red.png").write_bytes(png())
    f = tmp_path / "c.yaml"
    f.write_text(CONFIG.replace("IMAGE", "red.png").replace("{tool_call: weather}", "{tool_call: clock}"))
    with pytest.raises(ConfigError) as err:
        load_settings(f)
    assert "probes[0] (weather): expect.tool_call: 'clock' is not one of this probe's tools (weather)" \
        in "\n".join(err.value.lines)


# -- real captured shapes (docs/wire-formats.md), replayed over a socket ---------------------

ANTHROPIC_TOOL = [  # Claude thinking + tool use: padded JSON, an empty first input_json_delta
    (0, b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message",'
        b'"role":"assistant","model":"claude-sonnet-4-20250514","content":[],"stop_reason":null,'
        b'"usage":{"input_tokens":424,"output_tokens":1}}}\n\n'),
    (0.2, b'event: content_block_start\ndata: {"type":"content_block_start","index":1,"content_block":'
          b'{"type":"tool_use","id":"toolu_01Js4AMfx5qpTLhwTusnvT68","name":"weather","input":{},'
          b'"caller":{"type":"direct"}}             }\n\n'),
    (0.1, b'event: content_block_delta\ndata: {"type":"content_block_delta","index":1,"delta":'
          b'{"type":"input_json_delta","partial_json":""}             }\n\n'),
    (0.05, b'event: content_block_delta\ndata: {"type":"content_block_delta","index":1,"delta":'
           b'{"type":"input_json_delta","partial_json":"{\\"lo"} }\n\n'),
    (0.05, b'event: content_block_delta\ndata: {"type":"content_block_delta","index":1,"delta":'
           b'{"type":"input_json_delta","partial_json":"cation\\": \\"Florence, Italy\\"}"}      }\n\n'),
    (0, b'event: content_block_stop\ndata: {"type":"content_block_stop","index":1      }\n\n'
        b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"tool_use",'
        b'"stop_sequence":null},"usage":{"input_tokens":424,"output_tokens":119}               }\n\n'
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n'),
]

RESPONSES_TOOL = [  # gpt-5: the function_call item opens with the name, then argument deltas
    (0, b'event: response.created\ndata: {"type":"response.created","response":{"status":"in_progress"},'
        b'"sequence_number":0}\n\n'),
    (0.2, b'event: response.output_item.added\ndata: {"type":"response.output_item.added","item":{"id":"fc_0",'
          b'"type":"function_call","status":"in_progress","arguments":"","call_id":"call_z","name":"weather"},'
          b'"output_index":1,"sequence_number":82}\n\n'),
    (0.1, b'event: response.function_call_arguments.delta\ndata: {"type":"response.function_call_arguments.delta",'
          b'"delta":"{\\"","item_id":"fc_0","obfuscation":"owUEioaL30uf4t","output_index":1,"sequence_number":83}\n\n'),
    (0.05, b'event: response.function_call_arguments.delta\ndata: {"type":"response.function_call_arguments.delta",'
           b'"delta":"location\\":\\"Florence, Italy\\"}","item_id":"fc_0","output_index":1,"sequence_number":84}\n\n'),
    (0, b'event: response.completed\ndata: {"type":"response.completed","response":{"status":"completed",'
        b'"usage":{"input_tokens":63,"output_tokens":121,"output_tokens_details":{"reasoning_tokens":64}}}}\n\n'),
]

GEMINI_TOOL = [  # the call arrives whole, with a thoughtSignature, finishReason in the same event
    (0.2, b'data: {"candidates": [{"content": {"parts": [{"functionCall": {"name": "weather","args": '
          b'{"location": "Florence, Italy"}},"thoughtSignature": "CiQBvj72"}],"role": "model"},'
          b'"finishReason": "STOP","index": 0,"finishMessage": "Model generated function call(s)."}],'
          b'"usageMetadata": {"promptTokenCount": 54,"candidatesTokenCount": 14,"totalTokenCount": 130,'
          b'"thoughtsTokenCount": 62},"modelVersion": "gemini-2.5-flash","responseId": "zwCz"}\r\n\r\n'),
]


@pytest.mark.parametrize(("kind", "base", "writes"), [
    ("anthropic", "/v1", ANTHROPIC_TOOL), ("openai_responses", "/v1", RESPONSES_TOOL),
    ("gemini", "/v1beta", GEMINI_TOOL),
])
async def test_real_tool_call_streams(kind: str, base: str, writes: list[tuple[float, bytes]]) -> None:
    from tests.replay import ReplayServer

    async with ReplayServer(Script(writes=writes)) as srv, new_client() as client:
        t = ProbeTarget(ProviderSpec("p", kind, srv.url + base, Secret("k")), "m",
                        ProbeSpec(prompt="Weather in Florence?", max_tokens=256, tools=(WEATHER,),
                                  expect=Expectation(tool_call="weather")), timeout=5)
        r = await run_probe(client, t)
    assert r.outcome is Outcome.OK, (kind, r.error)
    assert r.ttft == pytest.approx(0.2, abs=TOL), kind  # the tool's name, not its arguments
    assert "Florence, Italy" in r.text
