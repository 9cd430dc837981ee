"""Config contract (docs/architecture.md §8): bad files are rejected with file, key and reason, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from daemon.config import ConfigError, load_settings
from tests.factories import REPO

GOOD = """
region: eu-west-1
probes:
  - name: short
    prompt: "Reply with exactly one word: pong"
    max_tokens: 16
    expect: {contains: pong}
defaults: {interval: 60s, timeout: 30s, jitter: 10%, probe: short}
providers:
  - name: openai
    kind: openai
    base_url: https://api.openai.com/v1
    api_key_env: TEST_OPENAI_KEY
    models: [gpt-4o-mini, {name: o4-mini, probe: short, interval: 30s}]
    prices: {gpt-4o-mini: {input_per_mtok: 0.15, output_per_mtok: 0.60}}
"""


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "daemon.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_design_example_loads_and_expands_targets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    design = REPO / "docs" / "architecture.md"
    yaml_text = design.read_text().split("## 8. The configuration contract")[1].split("```yaml\n")[1].split("```")[0]
    f = tmp_path / "design.yaml"
    f.write_text(yaml_text)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-design")
    s = load_settings(f)
    keys = [t.key for t in s.targets()]
    assert keys == ["openai/gpt-4o-mini/short", "openai/o4-mini/short"]
    assert s.interval_for("openai", "o4-mini") == 30
    assert s.interval_for("openai", "gpt-4o-mini") == 60
    assert s.defaults.jitter == pytest.approx(0.1)
    assert s.alerts.rules[0].for_ == 120


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(GOOD)
    monkeypatch.setenv("LLM_VITALS_REGION", "us-east-2")
    monkeypatch.setenv("LLM_VITALS_DEFAULTS__INTERVAL", "15s")
    s = load_settings(f)
    assert s.region == "us-east-2"
    assert s.defaults.interval == 15
    assert s.defaults.timeout == 30  # sibling keys from the file survive a nested override


@pytest.mark.parametrize(
    ("mutate", "key", "reason"),
    [
        (lambda t: t.replace("max_tokens: 16", "max_tokens: 16\n    max_tokenz: 3"), "probes[0] (short).max_tokenz", "unknown key"),
        (lambda t: t.replace("interval: 60s", "interval: 60 seconds"), "defaults.interval", "invalid duration"),
        (lambda t: t.replace("kind: openai", "kind: opnai"), "providers[0] (openai).kind", "unknown provider kind 'opnai'"),
        (lambda t: t.replace("[gpt-4o-mini, {", "[gpt-4o-mini, gpt-4o-mini, {"), "providers[0]", "duplicate target openai/gpt-4o-mini/short"),
        (lambda t: t.replace("probe: short, interval", "probe: long, interval"), "providers[0].models[1]", "unknown probe profile 'long'"),
        (lambda t: t + "http: {listen: 0.0.0.0:9464}\n", "http.listen", "auth_token_env"),
        (lambda t: t.replace("region: eu-west-1", "region: [eu"), "line", "invalid YAML"),
    ],
)
def test_bad_config_names_file_key_reason(tmp_path: Path, mutate, key: str, reason: str) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "bad.yaml"
    f.write_text(mutate(GOOD))
    with pytest.raises(ConfigError) as err:
        load_settings(f)
    text = str(err.value)
    assert str(f) in text and key in text and reason in text, text


def test_cli_check_rejects_bad_configs_with_exit_2(tmp_path: Path) -> None:
    for name, text, key in [
        ("unknown-key.yaml", GOOD.replace("region:", "regoin:"), "regoin: unknown key"),
        ("bad-duration.yaml", GOOD.replace("timeout: 30s", "timeout: 30x"), "defaults.timeout"),
        ("missing-secret.yaml", GOOD, "TEST_OPENAI_KEY is not set"),
        ("dup-target.yaml", GOOD.replace("models: [gpt-4o-mini,", "models: [gpt-4o-mini, gpt-4o-mini,"), "duplicate target"),
        ("bad-kind.yaml", GOOD.replace("kind: openai", "kind: nope"), "unknown provider kind"),
    ]:
        f = tmp_path / name
        f.write_text(text)
        res = run_cli("check", "-c", str(f))
        assert res.returncode == 2, (name, res.stdout, res.stderr)
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1, (name, res.stderr)
        assert str(f) in lines[0] and key in lines[0], (name, lines[0])
        # `run` rejects the same file the same way, before doing anything
        res_run = run_cli("run", "-c", str(f))
        assert res_run.returncode == 2, (name, res_run.stderr)
        assert key in res_run.stderr


def test_cli_check_ok_and_secret_never_printed(tmp_path: Path) -> None:
    f = tmp_path / "good.yaml"
    f.write_text(GOOD)
    res = run_cli("check", "-c", str(f), env={"TEST_OPENAI_KEY": "sk-very-secret-123456"})
    assert res.returncode == 0, res.stderr
    assert "2 targets" in res.stdout
    assert "sk-very-secret" not in res.stdout + res.stderr


def test_secret_from_file(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("sk-from-file\n")
    f = tmp_path / "c.yaml"
    f.write_text(GOOD.replace("api_key_env: TEST_OPENAI_KEY", f"api_key_file: {key}"))
    t = load_settings(f).targets()[0]
    assert t.provider.api_key is not None and t.provider.api_key.get() == "sk-from-file"
    assert "sk-from-file" not in repr(t)


@pytest.mark.parametrize(("window", "ok"), [("10s", True), ("1h", True), ("2h", False), ("500ms", False)])
def test_threshold_window_is_one_the_daemon_can_evaluate(tmp_path: Path, window: str, ok: bool) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("alerts:\n  rules:\n    - {name: slow, kind: threshold, metric: ttft, stat: p95, "
                 f"window: {window}, op: '>', value: 2}}\n")
    if ok:
        load_settings(f)
        return
    with pytest.raises(ConfigError) as err:
        load_settings(f)
    msg = str(err.value)
    assert str(f) in msg and "alerts.rules[0] (slow)" in msg and "up to the 60m" in msg


def test_demo_state_lives_in_the_users_state_dir_not_the_cwd(tmp_path: Path) -> None:
    """`silence add` and `silence list` without -c (the demo's config) find the same database
    from any working directory: $XDG_STATE_HOME/llm-vitals/demo.db."""
    import os

    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "PYTHONPATH": str(REPO)}
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    add = subprocess.run([sys.executable, "-m", "daemon.cli", "silence", "add", "--match", "provider=x",
                          "--duration", "1h", "--comment", "from a"], cwd=a, env=env, capture_output=True, text=True, timeout=60)
    assert add.returncode == 0, add.stderr
    listed = subprocess.run([sys.executable, "-m", "daemon.cli", "silence", "list"], cwd=b, env=env,
                            capture_output=True, text=True, timeout=60)
    assert "from a" in listed.stdout, listed.stdout + listed.stderr
    assert (tmp_path / "state" / "llm-vitals" / "demo.db").exists()
    assert not list(a.glob("*.db")) and not list(b.glob("*.db"))


def test_an_error_from_an_environment_override_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("defaults: {interval: 60s}\n")
    monkeypatch.setenv("LLM_VITALS_DEFAULTS__INTERVAL", "abc")
    with pytest.raises(ConfigError) as err:
        load_settings(f)
    assert "defaults.interval" in str(err.value) and "LLM_VITALS_DEFAULTS__INTERVAL" in str(err.value)
    monkeypatch.delenv("LLM_VITALS_DEFAULTS__INTERVAL")
    f.write_text("defaults: {interval: abc}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(f)
    assert "environment" not in str(err.value)


@pytest.mark.parametrize("url", ["api.openai.com/v1", "ftp://api.example.com/v1"])
def test_a_base_url_must_be_http(tmp_path: Path, url: str) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(f"providers: [{{name: p, kind: openai, base_url: '{url}', models: [m]}}]\n")
    with pytest.raises(ConfigError) as err:
        load_settings(f)
    assert "providers[0] (p).base_url" in str(err.value) and "http:// or https://" in str(err.value)


def test_check_offline_and_warnings(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("defaults: {interval: 10s, timeout: 30s}\n"
                 "providers: [{name: p, kind: openai, base_url: 'https://api.example.com/v1', api_key_env: NOT_SET_ANYWHERE, models: [m]}]\n")
    online = run_cli("check", "-c", str(f))
    assert online.returncode == 2 and "NOT_SET_ANYWHERE" in online.stderr
    offline = run_cli("check", "--offline", "-c", str(f))
    assert offline.returncode == 0, offline.stderr
    assert "offline" in offline.stdout and "1 provider," in offline.stdout
    assert "warning:" in offline.stderr and "timeout 30s is longer than the interval 10s" in offline.stderr


def test_provider_options_come_from_the_protocol_that_reads_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_AWS_ID", "AKIDEXAMPLE")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("""
providers:
  - {name: b, kind: bedrock, base_url: "http://127.0.0.1:9", models: [m], aws_access_key_id_env: T_AWS_ID}
  - {name: o, kind: openai, base_url: "http://127.0.0.1:9/v1", models: [m], aws_region: eu-west-1,
     max_completion_tokens: true}
""")
    s = load_settings(cfg)
    bedrock, openai = (p.spec() for p in s.providers)
    assert bedrock.options["region"] == "us-east-1"  # the protocol's default
    assert bedrock.options["aws_access_key_id"].get() == "AKIDEXAMPLE"
    assert openai.options == {"max_completion_tokens": True}  # aws_region is not the openai protocol's
    assert s.warnings() == ["providers[1] (o).aws_region: not read by kind openai (ignored)"]
