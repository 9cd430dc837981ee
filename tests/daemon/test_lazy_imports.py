"""The daemon loads an optional library only when the config needs it: at 1,000 targets
the process's RSS budget (bench/capacity.py) has no room for ~30 MB of InfluxDB and
OpenTelemetry clients, 16 MB of botocore (Bedrock) or 15 MB of numpy (the status page's
history, `report`) that a deployment without them never calls."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OPTIONAL = ("influxdb_client", "opentelemetry.sdk", "opentelemetry.exporter", "scipy", "numpy", "botocore")


def _loaded(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in {OPTIONAL!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    loaded: list[str] = json.loads(out.stdout.splitlines()[-1])  # after the daemon's log lines
    return loaded


def test_the_daemon_module_imports_no_optional_sink() -> None:
    assert _loaded("import daemon.process") == []


def test_a_daemon_without_influx_or_otlp_imports_neither(tmp_path: Path) -> None:
    code = (
        "from daemon.config import Settings; from daemon.process import Daemon; "
        f"s = Settings(storage={{'path': {str(tmp_path / 'state.db')!r}}}, "
        "providers=[{'name': 'p', 'kind': 'openai_compatible', 'base_url': 'http://127.0.0.1:9/v1', 'models': ['m']}]); "
        "d = Daemon(s, None, 'test'); assert d._make_influx(s) is None and d._make_otlp(s) is None"
    )
    assert _loaded(code) == []


def test_a_configured_influx_sink_still_loads_its_client(tmp_path: Path) -> None:
    """The check above can fail: configuring the sink does bring the client in."""
    code = (
        "from daemon.config import Settings; from daemon.process import Daemon; "
        f"s = Settings(storage={{'path': {str(tmp_path / 'state.db')!r}}}, "
        "influxdb={'url': 'http://127.0.0.1:9', 'org': 'o', 'bucket': 'b'}, "
        "providers=[{'name': 'p', 'kind': 'openai_compatible', 'base_url': 'http://127.0.0.1:9/v1', 'models': ['m']}]); "
        "d = Daemon(s, None, 'test'); assert d._make_influx(s) is not None"
    )
    assert "influxdb_client" in _loaded(code)


RUN = """
import asyncio
from daemon import status
from daemon.config import load_settings
from daemon.process import Daemon

async def main() -> None:
    d = Daemon(load_settings({path!r}), {path!r}, {path!r})
    task = asyncio.create_task(d.run())
    for _ in range(300):  # every target probed once, through the detector
        if d.scheduler is not None and status.readiness(d)[0]:
            break
        await asyncio.sleep(0.05)
    assert status.readiness(d)[0]
    assert d.detector is not None
    await d.detector.evaluate_async()
    d._stop.set()
    await task

asyncio.run(main())
"""
DAEMON = """
http: {{listen: "127.0.0.1:0"}}
storage: {{path: "{tmp}/state.db"}}
simulator: {{enabled: true}}
defaults: {{interval: 1m, timeout: 10s, jitter: 0}}
alerts: {{enabled: false}}
providers:
  - {{name: sim-openai, kind: openai_compatible, base_url: "{{simulator}}/v1", models: [fast-a]}}
  - {{name: sim-anthropic, kind: anthropic, base_url: "{{simulator}}/v1", models: [claude-x]}}
"""


def _loaded_after_probing(tmp_path: Path, extra_provider: str = "") -> list[str]:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(DAEMON.format(tmp=tmp_path) + extra_provider)
    return _loaded(RUN.format(path=str(cfg)))


def test_a_daemon_probing_without_bedrock_loads_neither_botocore_nor_numpy(tmp_path: Path) -> None:
    assert _loaded_after_probing(tmp_path) == []


def test_a_configured_bedrock_target_loads_botocore_before_its_first_probe(tmp_path: Path) -> None:
    """The check above can fail: a Bedrock provider brings botocore in (at startup)."""
    bedrock = '  - {name: aws, kind: bedrock, base_url: "http://127.0.0.1:9", models: [m], api_key_env: HOME}\n'
    assert "botocore" in _loaded_after_probing(tmp_path, bedrock)
