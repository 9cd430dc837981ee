"""Real servers for tests, started on 127.0.0.1 with their own config and data dir."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, wait_http


def need(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.skip(f"{binary} not installed (.ci/run installs it from Debian packages)")
    return path


class Prometheus:
    def __init__(self, workdir: Path, scrape_targets: list[str], metrics_path: str = "/metrics",
                 rule_files: list[str] | None = None, bearer: str | None = None) -> None:
        binary = need("prometheus")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        auth = f"\n    authorization: {{credentials: {bearer}}}" if bearer else ""
        rules = "".join(f"\n  - {r}" for r in (rule_files or []))
        cfg = workdir / "prometheus.yml"
        cfg.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            + (f"rule_files:{rules}\n" if rules else "")
            + "scrape_configs:\n  - job_name: llm-vitals\n"
            + f"    metrics_path: {metrics_path}{auth}\n"
            + f"    static_configs: [{{targets: [{', '.join(repr(t) for t in scrape_targets)}]}}]\n"
        )
        self._log = open(workdir / "prometheus.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [binary, f"--config.file={cfg}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        wait_http(self.url + "/-/ready", 30, proc=self.proc)

    def query(self, promql: str) -> list[dict]:  # type: ignore[type-arg]
        r = httpx.get(self.url + "/api/v1/query", params={"query": promql}, timeout=10)
        body = r.json()
        assert body.get("status") == "success", (promql, body)
        return body["data"]["result"]  # type: ignore[no-any-return]

    def wait_query(self, promql: str, timeout: float = 30.0, min_results: int = 1) -> list[dict]:  # type: ignore[type-arg]
        deadline = time.monotonic() + timeout
        res: list[dict] = []  # type: ignore[type-arg]
        while time.monotonic() < deadline:
            res = self.query(promql)
            if len(res) >= min_results:
                return res
            time.sleep(0.5)
        raise AssertionError(f"{promql!r} returned {len(res)} series after {timeout}s, wanted {min_results}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


class InfluxDB1:
    """InfluxDB 1.x (Debian `influxdb`): /write and InfluxQL /query."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        binary = need("influxd")
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        rpc = free_port()
        self.cfg = workdir / "influxdb.conf"
        self.cfg.write_text(
            f'reporting-disabled = true\nbind-address = "127.0.0.1:{rpc}"\n'
            f'[meta]\n  dir = "{workdir}/meta"\n'
            f'[data]\n  dir = "{workdir}/data"\n  wal-dir = "{workdir}/wal"\n  query-log-enabled = false\n'
            f'[http]\n  bind-address = "127.0.0.1:{self.port}"\n  log-enabled = false\n'
            '[monitor]\n  store-enabled = false\n[continuous_queries]\n  enabled = false\n'
        )
        self._binary = binary
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self._log = open(self.workdir / "influxd.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([self._binary, "-config", str(self.cfg)], stdout=self._log, stderr=subprocess.STDOUT)
        wait_http(self.url + "/ping", 30, ok=(204,), proc=self.proc)

    def query(self, q: str, db: str = "llm_vitals") -> list[dict]:  # type: ignore[type-arg]
        r = httpx.get(self.url + "/query", params={"q": q, "db": db, "epoch": "ns"}, timeout=10)
        r.raise_for_status()
        res = r.json()["results"][0]
        assert "error" not in res, res
        out = []
        for series in res.get("series", []):
            for row in series["values"]:
                rec = dict(zip(series["columns"], row, strict=True))
                rec.update(series.get("tags") or {})
                out.append(rec)
        return out

    def create_db(self, db: str = "llm_vitals") -> None:
        httpx.post(self.url + "/query", params={"q": f"CREATE DATABASE {db}"}, timeout=10).raise_for_status()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


class VictoriaMetrics:
    """Accepts influxdb-client's /api/v2/write; series read back as `measurement_field`."""

    def __init__(self, workdir: Path) -> None:
        binary = need("victoria-metrics")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(workdir / "vm.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [binary, f"-httpListenAddr=127.0.0.1:{self.port}", f"-storageDataPath={workdir / 'vmdata'}",
             "-retentionPeriod=1d", "-search.latencyOffset=0s", "-search.disableCache"],
            stdout=self._log, stderr=subprocess.STDOUT)
        wait_http(self.url + "/health", 30, proc=self.proc)

    def export(self, match: str) -> list[dict]:  # type: ignore[type-arg]
        import json

        r = httpx.get(self.url + "/api/v1/export", params={"match[]": match}, timeout=10)
        return [json.loads(line) for line in r.text.splitlines() if line.strip()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)
        self._log.close()
