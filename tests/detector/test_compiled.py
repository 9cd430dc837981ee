"""detector.core compiled (mypyc, setup.py) and as Python: the same verdicts and state, byte
for byte, and an edited core.py is never shadowed by its stale build.

Skipped where the install could not compile it (no C compiler or headers): then there is
only the Python one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import detector
from tests.detector.factories import write_csv

pytestmark = pytest.mark.skipif(not detector.core_is_compiled(),
                                reason="detector.core was not compiled at install (pure Python only)")

PURE = {"LLM_VITALS_PURE_PYTHON": "1"}

# replays series through Detector, saves every series' state halfway, goes on from the
# saved state in a fresh detector, and prints verdicts and both states
REPLAY = """
import json, sys
import detector
from detector.config import DetectorConfig
from detector.service import Detector
rows = json.load(open(sys.argv[1]))
out = {"compiled": detector.core_is_compiled(), "series": []}
for times, values, direction in rows:
    det, verdicts, states = Detector(DetectorConfig()), [], []
    for i, (t, v) in enumerate(zip(times, values)):
        if i == len(times) // 2:
            state = det.series[("t", "v")].to_state()
            states.append(json.dumps(state))
            det = Detector(DetectorConfig())
            det._get("t", "v", direction=direction).load_state(json.loads(states[-1]))
        det.observe_value("t", "v", t, v, direction=direction)
        verdicts.append(repr(det.evaluate(now=t)[("t", "v")]))
    states.append(json.dumps(det.series[("t", "v")].to_state()))
    out["series"].append({"verdicts": verdicts, "states": states})
print(json.dumps(out))
"""


def run(args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=cwd,
                          env={**os.environ, **(env or {})}, check=False)


def series() -> list[tuple[list[float], list[float], int]]:
    rng = np.random.default_rng(11)
    t0 = 1_700_000_000.0
    minute = 0.4 * np.exp(rng.normal(0, 0.15, 3000))
    minute[1500:1530] *= 2.5
    minute[2200:] *= 1.4
    hours = np.arange(24 * 21)
    daily = 1.0 + np.clip(2.0 * np.sin(2 * np.pi * hours / 24), 0, None)
    hourly = daily * np.exp(rng.standard_t(3, hours.size) * 0.15)
    hourly[300:306] *= 3.0
    hourly[400] *= 8.0
    return [([t0 + 60 * i for i in range(minute.size)], minute.tolist(), 1),
            ([t0 + 3600 * i for i in range(hours.size)], hourly.tolist(), 1),
            ([t0 + 3600 * i for i in range(hours.size)], hourly.tolist(), 0)]


def test_compiled_and_python_give_the_same_verdicts_and_state(tmp_path: Path) -> None:
    data = tmp_path / "series.json"
    data.write_text(json.dumps(series()))
    script = tmp_path / "replay.py"
    script.write_text(REPLAY)
    compiled = run([sys.executable, str(script), str(data)])
    pure = run([sys.executable, str(script), str(data)], PURE)
    assert compiled.returncode == 0 and pure.returncode == 0, compiled.stderr + pure.stderr
    a, b = json.loads(compiled.stdout), json.loads(pure.stdout)
    assert a["compiled"] and not b["compiled"]
    assert a["series"] == b["series"]
    verdicts = [v for s in a["series"] for v in s["verdicts"]]
    assert sum("anomalous=True" in v for v in verdicts) > 10  # incidents were judged, not just calm rows


def test_detect_writes_the_same_bytes_compiled_and_as_python(tmp_path: Path) -> None:
    rng = np.random.default_rng(12)
    v = 0.4 * np.exp(rng.normal(0, 0.12, 2000))
    v[900:960] *= 2.0
    v[1500:1510] = 0.0  # zeros: the raw scale with --direction both
    src = write_csv(tmp_path / "s.csv", v)
    cli = str(Path(sys.executable).with_name("llm-vitals"))
    for direction in ("up", "both"):
        outs = []
        for env in (None, PURE):
            done = run([cli, "detect", "--direction", direction, str(src)], env)
            assert done.returncode == 0, done.stderr
            outs.append(done.stdout)
        assert outs[0] == outs[1]
        assert ",1,1\n" in outs[0]  # an onset


def _copy_package(tmp_path: Path) -> Path:
    """The detector package with its build, as an editable install's tree holds it."""
    root = tmp_path / "pkg"
    shutil.copytree(Path(detector.__file__).parent, root / "detector", copy_function=shutil.copy2,
                    ignore=shutil.ignore_patterns("__pycache__"))
    return root


PROBE = "import detector, detector.core as c; print(detector.core_is_compiled(), c.__file__)"


def test_an_edited_core_runs_as_python_until_it_is_compiled_again(tmp_path: Path) -> None:
    root = _copy_package(tmp_path)
    env = {"PYTHONPATH": str(root)}
    fresh = run([sys.executable, "-c", PROBE], env, root)
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stdout.startswith(f"True {root}")
    source = root / "detector" / "core.py"
    built = max(p.stat().st_mtime for p in source.parent.glob("core.*") if p.suffix != ".py")
    os.utime(source, (built + 60, built + 60))  # edited a minute after the build
    stale = run([sys.executable, "-c", PROBE], env, root)
    assert stale.returncode == 0, stale.stderr
    assert stale.stdout.strip() == f"False {source}"
    assert "changed after it was compiled" in stale.stderr and "pip install -e ." in stale.stderr
    other = _copy_package(tmp_path / "b")
    forced = run([sys.executable, "-c", PROBE], {"PYTHONPATH": str(other), **PURE}, other)
    assert forced.stdout.startswith("False ") and forced.stderr == ""
    # the choice is made at `import detector`, the statistics imported only when used
    lazy = run([sys.executable, "-c", "import sys, detector; print('detector.core' in sys.modules)"],
               {"PYTHONPATH": str(root)}, root)
    assert lazy.stdout.strip() == "False" and "changed after it was compiled" in lazy.stderr
