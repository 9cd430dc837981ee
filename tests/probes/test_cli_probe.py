"""`llm-vitals probe`: JSON field names and exit codes are a contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from core.result import JSON_FIELDS

CFG = """
simulator: {enabled: true}
defaults: {interval: 60s, timeout: 3s, probe: short}
probes:
  - {name: short, prompt: "Reply with exactly one word: pong", max_tokens: 16, expect: {contains: pong}}
  - {name: strict, prompt: "Say ping", max_tokens: 16, expect: {contains: ping}}
providers:
  - name: sim
    kind: openai_compatible
    base_url: "{simulator}/v1"
    api_key_env: CLI_TEST_KEY
    models: [a, {name: b, probes: [short, strict]}]
  - name: broken
    kind: anthropic
    base_url: "{simulator}/v1"
    headers: {x-sim-fault: http_503}
    models: [c]
"""


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    f = tmp_path / "c.yaml"
    f.write_text(CFG)
    return subprocess.run([sys.executable, "-m", "daemon.cli", "probe", "-c", str(f), *args],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "CLI_TEST_KEY": "sk-cli-secret-987654"})


def test_json_lines_have_exactly_the_contract_fields(tmp_path: Path) -> None:
    res = run(tmp_path, "--target", "sim/a", "--count", "3", "--format", "json")
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(rows) == 3
    for row in rows:
        assert tuple(row) == JSON_FIELDS
        assert row["outcome"] == "ok" and row["provider"] == "sim" and row["model"] == "a"
        assert row["started_at"].endswith("Z") and "." in row["started_at"]
        datetime.fromisoformat(row["started_at"].replace("Z", "+00:00"))
        assert 0 < row["ttfb"] < row["ttft"] <= row["e2e"]
        assert row["tokens_source"] == "usage" and row["output_tokens"] > 0
    assert "sk-cli-secret" not in res.stdout + res.stderr


def test_exit_1_when_any_probe_fails_and_every_target_by_default(tmp_path: Path) -> None:
    res = run(tmp_path, "--format", "json", "--concurrency", "2")
    assert res.returncode == 1
    rows = {(r["provider"], r["model"], r["probe"]): r for r in map(json.loads, res.stdout.splitlines())}
    assert set(rows) == {("sim", "a", "short"), ("sim", "b", "short"), ("sim", "b", "strict"), ("broken", "c", "short")}
    assert rows[("broken", "c", "short")]["outcome"] == "http_error"
    assert rows[("broken", "c", "short")]["status_code"] == 503
    assert rows[("sim", "b", "strict")]["outcome"] == "content_mismatch"


def test_exit_2_for_unknown_target_and_table_output(tmp_path: Path) -> None:
    bad = run(tmp_path, "--target", "sim/zzz")
    assert bad.returncode == 2 and "no such target" in bad.stderr
    table = run(tmp_path, "--target", "sim/b/short")
    assert table.returncode == 0
    assert "sim/b/short" in table.stdout and "ok" in table.stdout


def test_operator_polish_version_help_errors_and_empty_lists(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys

    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path)}

    def cli(*a: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "daemon.cli", *a], capture_output=True, text=True, timeout=60, env=env)

    v = cli("--version")
    assert v.returncode == 0 and v.stdout.startswith("llm-vitals ")
    for sub in ("run", "check", "probe", "simulate", "silence", "alert-test"):
        h = cli(sub, "--help").stdout
        options = [ln for ln in h.splitlines() if ln.strip().startswith("-") and not ln.strip().startswith("-h")]
        assert options and all(len(ln.split(None, 2)) >= 2 for ln in options), (sub, h)
    nope = cli("probe", "--target", "nope/x")
    assert nope.returncode == 2 and nope.stdout == "" and nope.stderr.startswith("error:")
    bad = cli("alert-test", "nope")
    assert bad.returncode == 2 and bad.stderr.startswith("error:")
    assert cli("silence", "list").stdout.strip() == "no active silences"
    ok = cli("check")
    assert ok.returncode == 0 and "1 alert rule," in ok.stdout and "alert rules" not in ok.stdout
