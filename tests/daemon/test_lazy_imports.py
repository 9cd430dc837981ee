"""The daemon loads an optional sink's library only when that sink is configured: at
1,000 targets the process's RSS budget (bench/capacity.py) has no room for ~30 MB of
InfluxDB and OpenTelemetry clients a deployment without them never calls."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OPTIONAL = ("influxdb_client", "opentelemetry.sdk", "opentelemetry.exporter", "scipy")


def _loaded(code: str) -> list[str]:
    probe = f"{code}; import json, sys; print(json.dumps(sorted(m for m in {OPTIONAL!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    loaded: list[str] = json.loads(out.stdout)
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
