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
            + "scrape_configs:\n  - job_name: llm-canary\n"
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
