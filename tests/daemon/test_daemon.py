"""The daemon as a subprocess against the bundled simulator, scraped by a real Prometheus."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx

from tests.conftest import wait_http
from tests.daemon.factories import CONFIG, status
from tests.servers import Prometheus, need


def test_default_detail_keeps_the_series_budget(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(CONFIG)
    d.wait_ready()
    time.sleep(2)
    text = httpx.get(d.url + "/metrics", timeout=10).text
    per_target = {}
    for line in text.splitlines():
        if line.startswith("#") or 'model="' not in line:
            continue
        model = line.split('model="', 1)[1].split('"', 1)[0]
        per_target[model] = per_target.get(model, 0) + 1
    assert set(per_target) == {"fast-a", "fast-b", "claude-x"}
    assert all(14 <= n <= 50 for n in per_target.values()), per_target
    for full_only in ("llm_vitals_latency_quantile_seconds", "llm_vitals_probe_itl_seconds", "llm_vitals_probe_phase_seconds"):
        assert full_only not in text
    assert 'llm_vitals_probe_last_phase_seconds{' in text and "_created" not in text
    # gzip when the scraper asks (httpx decodes it), OpenMetrics when asked, as Prometheus does
    r = httpx.get(d.url + "/metrics", headers={"Accept-Encoding": "gzip"}, timeout=10)
    assert r.headers["Content-Encoding"] == "gzip" and "llm_vitals_probes_total{" in r.text
    assert int(r.headers["Content-Length"]) * 4 < len(r.content)
    om = httpx.get(d.url + "/metrics", timeout=10, headers={
        "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                  "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"})
    assert om.headers["Content-Type"].startswith("application/openmetrics-text")
    assert om.text.endswith("# EOF\n") and "# TYPE llm_vitals_probes counter" in om.text




def test_prometheus_scrapes_expected_series(daemon_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    need("prometheus")
    d = daemon_factory(CONFIG + "metrics: {detail: full}\n")
    d.wait_ready()
    prom = Prometheus(tmp_path / "prom", [f"127.0.0.1:{d.port}"])
    try:
        res = prom.wait_query('sum by (provider, model, outcome) (rate(llm_vitals_probes_total{outcome="ok"}[15s])) > 0', 40, 3)
        assert {(r["metric"]["provider"], r["metric"]["model"]) for r in res} == {
            ("sim-openai", "fast-a"), ("sim-openai", "fast-b"), ("sim-anthropic", "claude-x")}
        q = prom.wait_query(
            "histogram_quantile(0.95, sum by (le, provider, model) (rate(llm_vitals_probe_ttft_seconds_bucket[15s])))", 20, 3)
        for r in q:
            v = float(r["value"][1])
            assert 0 < v < 10, r
        up = prom.query('llm_vitals_probe_success{region="test-1"}')
        assert len(up) == 3 and all(r["value"][1] == "1" for r in up)
        quant = prom.wait_query('llm_vitals_latency_quantile_seconds{metric="ttft",quantile="0.95",window="1m"}', 10, 3)
        assert all(float(r["value"][1]) > 0 for r in quant)
        for name in ("llm_vitals_scheduler_lag_seconds_count", "llm_vitals_event_loop_lag_seconds",
                     "llm_vitals_queue_depth", "llm_vitals_probe_phase_seconds_bucket"):
            assert prom.query(name), name
    finally:
        prom.stop()
    # promtool agrees the exposition is clean
    text = httpx.get(d.url + "/metrics").text
    assert "_created" not in text
    promtool = need("promtool")
    out = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    # the status API carries the last result and the window quantiles of every target
    st = status(d)
    assert st["ready"] is True
    by_key = {t["target"]: t for t in st["targets"]}
    assert set(by_key) == {"sim-openai/fast-a/short", "sim-openai/fast-b/short", "sim-anthropic/claude-x/short"}
    for t in by_key.values():
        assert t["last"]["outcome"] == "ok"
        assert t["quantiles"]["ttft"]["1m"]["0.5"] > 0
    assert d.stop() == 0


def test_sigterm_drains_in_flight_probe_and_exits_0(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    cfg = CONFIG.replace("interval: 1s", "interval: 30s").replace(
        "models: [claude-x]", "models: [claude-x]\n    headers: {x-sim-ttft: 2500ms}")
    d = daemon_factory(cfg.replace("jitter: 10%", "jitter: 0"))
    # all three probes start immediately; the anthropic one takes >= 2.5 s
    time.sleep(1.5)
    wait_http(d.url + "/healthz", 10)
    t0 = time.monotonic()
    rc = d.stop(signal.SIGTERM)
    took = time.monotonic() - t0
    assert rc == 0, d.logs()[-2000:]
    assert took < 15
    db = sqlite3.connect(Path(d.config).parent / "state.db")
    rows = db.execute("SELECT target, outcome FROM results").fetchall()
    assert ("sim-anthropic/claude-x/short", "ok") in rows, (rows, d.logs()[-3000:])
    logs = d.logs()
    assert "daemon_stopped" in logs
    # how the detector runs, where an operator looks first (twice the CPU as Python)
    import detector

    assert f"detector_compiled={detector.core_is_compiled()}" in logs or \
        f'"detector_compiled": {str(detector.core_is_compiled()).lower()}' in logs, logs[-2000:]


def test_sighup_reload_adds_removes_and_keeps_histograms(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(CONFIG)
    d.wait_ready()
    time.sleep(2)

    def ttft_count(model: str) -> float:
        text = httpx.get(d.url + "/metrics").text
        for line in text.splitlines():
            if line.startswith("llm_vitals_probe_ttft_seconds_count{") and f'model="{model}"' in line:
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = ttft_count("fast-a")
    assert before >= 1
    new = Path(d.config).read_text().replace("models: [fast-a, fast-b]", "models: [fast-a, fast-c]")
    Path(d.config).write_text(new.replace(str(d.port), str(d.port)))
    d.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 15
    keys: set[str] = set()
    while time.monotonic() < deadline:
        keys = {t["target"] for t in status(d)["targets"]}
        if "sim-openai/fast-c/short" in keys:
            break
        time.sleep(0.3)
    assert keys == {"sim-openai/fast-a/short", "sim-openai/fast-c/short", "sim-anthropic/claude-x/short"}
    assert ttft_count("fast-a") >= before  # unchanged target keeps its histogram
    time.sleep(2.5)
    assert ttft_count("fast-b") == 0  # removed target's series are gone
    assert ttft_count("fast-c") >= 1

    # an invalid new config is rejected; the old one keeps running
    Path(d.config).write_text(new.replace("kind: anthropic", "kind: antropic"))
    d.proc.send_signal(signal.SIGHUP)
    time.sleep(1.5)
    assert "config_reload_rejected" in d.logs()
    assert "antropic" in d.logs()
    assert {t["target"] for t in status(d)["targets"]} == keys
    assert d.proc.poll() is None
    assert d.stop() == 0


def test_restart_restores_aggregates(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(CONFIG)
    d.wait_ready()
    time.sleep(2)
    assert d.stop() == 0
    cfg = (Path(d.config).read_text().replace("interval: 1s", "interval: 1h").replace("jitter: 10%", "jitter: 100%")
           .replace(f"127.0.0.1:{d.port}", "127.0.0.1:{port}"))
    d2 = daemon_factory(cfg, name="again")
    wait_http(d2.url + "/healthz", 30, proc=d2.proc)
    st = status(d2)
    restored = {t["target"]: t for t in st["targets"]}
    # no probe has run yet in the new process (interval 1h, spread over it), yet quantiles are there
    assert all(t["quantiles"].get("ttft", {}).get("1h") for t in restored.values()), restored
    assert all(t["last"] is not None for t in restored.values())


def test_bearer_token_guards_everything_but_health(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    cfg = CONFIG.replace('http: {listen: "127.0.0.1:{port}"}',
                         'http: {listen: "127.0.0.1:{port}", auth_token_env: VITALS_TEST_TOKEN, metrics_require_auth: true}')
    d = daemon_factory(cfg, env={"VITALS_TEST_TOKEN": "s3cret-token-value"})
    wait_http(d.url + "/healthz", 30, proc=d.proc)
    assert httpx.get(d.url + "/api/v1/status").status_code == 401
    assert httpx.get(d.url + "/metrics").status_code == 401
    assert httpx.get(d.url + "/api/v1/status", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert status(d, "s3cret-token-value")["region"] == "test-1"
    assert httpx.get(d.url + "/readyz").status_code in (200, 503)
    assert "s3cret-token-value" not in d.logs()


def test_status_json_is_stable(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(CONFIG)
    d.wait_ready()
    st = status(d)
    last = st["targets"][0]["last"]
    assert set(last) >= {"ttft", "e2e", "outcome", "started_at", "output_tokens"}
    json.dumps(st)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def test_a_killed_daemon_takes_its_simulator_with_it(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    if not Path("/proc/self/task").exists():
        import pytest

        pytest.skip("needs /proc")
    d = daemon_factory(CONFIG)
    d.wait_ready()
    children = Path(f"/proc/{d.proc.pid}/task/{d.proc.pid}/children").read_text().split()
    sims = [int(c) for c in children if b"probes.simulator" in Path(f"/proc/{c}/cmdline").read_bytes()]
    assert len(sims) == 1
    d.proc.kill()  # no chance to clean up: SIGKILL
    d.proc.wait()
    deadline = time.monotonic() + 10
    while _alive(sims[0]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(sims[0]), "the simulator outlived its daemon"


def test_sigterm_to_the_whole_group_lets_in_flight_probes_finish(tmp_path: Path) -> None:
    # systemd (KillMode=control-group) and `timeout` signal every process of the unit: the
    # simulator child must keep serving the probes the daemon is draining.
    import os
    import sys

    from tests.conftest import REPO, free_port

    port = free_port()
    cfg = tmp_path / "c.yaml"
    scenario = tmp_path / "slow.yaml"
    scenario.write_text("defaults: {ttft: 100ms, itl: 100ms, jitter: 0%, tokens: 30}\n")  # 3 s streams
    cfg.write_text(CONFIG.replace("{port}", str(port)).replace("{tmp}", str(tmp_path))
                   .replace("simulator: {enabled: true}", f"simulator: {{enabled: true, scenario: '{scenario}'}}"))
    log = tmp_path / "d.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "daemon.cli", "run", "-c", str(cfg)], stdout=out,
                                stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
        try:
            wait_http(f"http://127.0.0.1:{port}/readyz", 40, proc=proc)
            time.sleep(1.0)  # every target has a 3 s stream in flight
            os.killpg(proc.pid, signal.SIGTERM)
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    lines = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
    stop = next(i for i, x in enumerate(lines) if x.get("event") == "daemon_stopping")
    assert lines[stop]["in_flight"] > 0
    after = [x for x in lines[stop:] if x.get("outcome") not in (None, "ok")]
    assert after == [], after
