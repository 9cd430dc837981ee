"""Faults at start-up and reload (issue 13, items 7, 10, 11), against the real CLI and daemon
subprocess: an empty config, unwritable storage, hostile secret files, unbounded silences."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO
from tests.daemon.factories import CONFIG, status


def cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "daemon.cli", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=timeout)


def one_clear_line(out: subprocess.CompletedProcess[str], *words: str) -> None:
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    for w in words:
        assert w in lines[0], lines[0]


def config_file(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    port = 1  # never listened on: these configs must not get that far
    p = tmp_path / name
    p.write_text(text.replace("{port}", str(port)).replace("{tmp}", str(tmp_path)))
    return p


@pytest.mark.parametrize("content", ["", "\n# only a comment\n", "---\n"])
def test_an_empty_config_is_rejected_by_check_and_run(tmp_path: Path, content: str) -> None:
    f = tmp_path / "empty.yaml"
    f.write_text(content)
    for cmd in ("check", "run"):
        one_clear_line(cli(cmd, "-c", str(f)), str(f), "empty")
    one_clear_line(cli("check", "-c", "/dev/null"), "/dev/null", "empty")


def test_a_config_without_providers_is_rejected(tmp_path: Path) -> None:
    f = config_file(tmp_path, "region: r1\nproviders: []\n")
    one_clear_line(cli("check", "-c", str(f)), str(f), "providers")


def test_sighup_with_an_empty_file_keeps_every_target(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(CONFIG)
    d.wait_ready()
    keys = {t["target"] for t in status(d)["targets"]}
    assert len(keys) == 3
    for content in ("", "# nothing\n"):
        Path(d.config).write_text(content)
        d.proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
    assert {t["target"] for t in status(d)["targets"]} == keys
    metrics = httpx.get(d.url + "/metrics").text
    assert 'llm_vitals_config_reloads_total{outcome="rejected"} 2.0' in metrics
    assert "the file is empty" in d.logs()
    # probing goes on: results keep arriving for the old targets
    before = {t["target"]: t["last"]["started_at"] for t in status(d)["targets"]}
    time.sleep(2.5)
    after = {t["target"]: t["last"]["started_at"] for t in status(d)["targets"]}
    assert all(after[k] != before[k] for k in keys), (before, after)
    assert d.stop() == 0


@pytest.mark.parametrize("storage", ["/sys/kernel/llm-vitals/state.db", "{tmp}/a-file/state.db", "{tmp}"])
def test_unusable_storage_is_one_line_and_exit_2_for_check_and_run(tmp_path: Path, storage: str) -> None:
    """/sys refuses new files even to root (a read-only mount behaves alike; permission bits
    do not stop root, so they cannot stand in here)."""
    (tmp_path / "a-file").write_text("not a directory")
    f = config_file(tmp_path, CONFIG.replace('storage: {path: "{tmp}/state.db", retention: 1d}',
                                             f'storage: {{path: "{storage}"}}'))
    for cmd in ("check", "run"):
        one_clear_line(cli(cmd, "-c", str(f)), "storage.path")


@pytest.mark.parametrize("kind", ["invalid-utf8", "dev-zero", "too-big"])
def test_hostile_secret_files_are_one_line_and_exit_2(tmp_path: Path, kind: str) -> None:
    key = tmp_path / "key"
    if kind == "invalid-utf8":
        key.write_bytes(b"sk-\xff\xfe\x80key")
    elif kind == "too-big":
        key.write_bytes(b"k" * 100_000)
    path = "/dev/zero" if kind == "dev-zero" else str(key)
    f = config_file(tmp_path, CONFIG.replace("base_url: \"{simulator}/v1\"\n    models: [fast-a, fast-b]",
                                             f"base_url: \"{{simulator}}/v1\"\n    api_key_file: {path}\n"
                                             "    models: [fast-a, fast-b]"))
    assert "api_key_file" in f.read_text()
    for cmd in ("check", "run", "probe"):
        t0 = time.monotonic()
        one_clear_line(cli(cmd, "-c", str(f), timeout=20), "providers.sim-openai.api_key", path)
        assert time.monotonic() - t0 < 15


ALERTS = CONFIG.replace("alerts: {enabled: false}", "alerts: {enabled: true}")


def test_silence_durations_are_bounded_over_http(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(ALERTS)
    d.wait_ready()
    for duration in (1e12, "Infinity", "NaN", -5, 0, "91d", "1e400", "9" * 400 + "s", True):
        raw = json.dumps({"match": {"provider": "sim-openai"}, "duration": duration})
        if duration in ("Infinity", "NaN", "1e400"):
            raw = raw.replace(f'"{duration}"', str(duration))  # the bare JSON literal Python's json reads
        r = httpx.post(d.url + "/api/v1/silences", content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 400, (duration, r.text)
        assert "duration" in r.json()["error"]
    got = httpx.get(d.url + "/api/v1/silences")
    assert got.status_code == 200 and json.loads(got.text, parse_constant=pytest.fail) == {"silences": []}
    ok = httpx.post(d.url + "/api/v1/silences", json={"match": {"provider": "sim-openai"}, "duration": "90d"})
    assert ok.status_code == 201, ok.text
    assert d.stop() == 0


def test_silence_cli_bounds_durations_and_lists_an_old_unbounded_silence(tmp_path: Path) -> None:
    from alerts.silences import SILENCES_KEY
    from core.store import Store

    f = config_file(tmp_path, ALERTS)
    for bad in ("1e12", "100d", "0s", "Infinity"):
        out = cli("silence", "add", "-c", str(f), "--match", "provider=x", "--duration", bad)
        one_clear_line(out, "--duration")
    ok = cli("silence", "add", "-c", str(f), "--match", "provider=x", "--duration", "2h")
    assert ok.returncode == 0, ok.stderr
    # one saved by an older version with an end at Infinity: listed at the bound, no crash
    store = Store(tmp_path / "state.db")
    store.update_state(SILENCES_KEY, [], lambda items: ([*items, {"id": "old", "match": {"provider": "y"},
                                                                    "starts_at": 0, "ends_at": float("inf"),
                                                                    "comment": ""}], None))
    store.close()
    listed = cli("silence", "list", "-c", str(f))
    assert listed.returncode == 0, listed.stderr
    assert "old" in listed.stdout and ok.stdout.strip() in listed.stdout
