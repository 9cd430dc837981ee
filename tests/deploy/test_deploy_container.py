"""Container image (deploy/container) and compose stack (deploy/compose), checked without a
Docker engine: the build context builds a wheel, the HEALTHCHECK command works, the image is
non-root and slim, the configs they ship are valid, and compose mounts what exists."""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from daemon.config import load_settings
from tests.conftest import free_port
from tests.factories import REPO

DOCKERFILE = REPO / "deploy" / "container" / "Dockerfile"
COMPOSE_DIR = REPO / "deploy" / "compose"


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in text.splitlines()
            if ln.strip() and not ln.lstrip().startswith("#")]


def test_image_is_slim_non_root_with_healthcheck_and_run_command() -> None:
    ins = instructions()
    froms = [v for k, v in ins if k == "FROM"]
    image = next(v.split("=", 1)[1] for k, v in ins if k == "ARG" and v.startswith("PYTHON_IMAGE="))
    assert image == "python:3.11-slim" and all(f.startswith("${PYTHON_IMAGE}") for f in froms)  # a digest via --build-arg
    user = [v for k, v in ins if k == "USER"][-1]
    assert user.split(":")[0] not in ("root", "0")
    assert json.loads([v for k, v in ins if k == "ENTRYPOINT"][-1]) == ["llm-vitals"]
    assert json.loads([v for k, v in ins if k == "CMD"][-1]) == ["run", "-c", "/etc/llm-vitals/config.yaml"]
    hc = [v for k, v in ins if k == "HEALTHCHECK"][-1]
    assert "/healthz" in hc and "urllib" in hc


def healthcheck_argv(port: int) -> list[str]:
    hc = [v for k, v in instructions() if k == "HEALTHCHECK"][-1]
    argv = json.loads(hc[hc.index("CMD") + 3:].strip())
    return [sys.executable if a == "python" else a.replace(":9464", f":{port}") for a in argv]


def test_healthcheck_command_passes_on_200_and_fails_otherwise() -> None:
    status = {"code": 200}

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status["code"] if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *a: object) -> None:
            pass

    port = free_port()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        assert subprocess.run(healthcheck_argv(port), capture_output=True, timeout=20).returncode == 0
        status["code"] = 503
        assert subprocess.run(healthcheck_argv(port), capture_output=True, timeout=20).returncode != 0
    finally:
        srv.shutdown()
    assert subprocess.run(healthcheck_argv(free_port()), capture_output=True, timeout=20).returncode != 0


def test_build_context_builds_the_package(tmp_path: Path) -> None:
    """Only what the Dockerfile COPYs (and .dockerignore lets through) makes a working wheel."""
    pytest.importorskip("setuptools")
    ctx = tmp_path / "ctx"
    for k, v in instructions():
        if k == "COPY" and "--from" not in v:
            *srcs, _dest = v.split()
            for src in srcs:
                s = REPO / src
                d = ctx / src
                d.parent.mkdir(parents=True, exist_ok=True)
                if s.is_dir():
                    shutil.copytree(s, d, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(s, d)
    ignore = (REPO / "deploy" / "container" / "Dockerfile.dockerignore").read_text().split()
    rooms = sorted(p.name for p in REPO.iterdir() if (p / "__init__.py").exists() and p.name != "tests")
    assert {"core", "probes", "detector", "alerts", "daemon"} <= set(rooms)
    for src in ("pyproject.toml", "README.md", "requirements.lock", "setup.py", *(f"{r}/" for r in rooms),
                "deploy/container/config.yaml"):
        assert f"!{src}" in ignore
    # as Python (the mypyc build is tests/detector/test_compiled.py's, and a minute of CPU)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        "-w", str(tmp_path / "wheel"), "."], cwd=ctx / "", capture_output=True, text=True, timeout=120,
                       env={**os.environ, "LLM_VITALS_PURE_PYTHON": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    import zipfile

    (whl,) = (tmp_path / "wheel").glob("llm_vitals-*.whl")
    names = zipfile.ZipFile(whl).namelist()
    assert "daemon/cli.py" in names and "daemon/demo.yaml" in names and "probes/simulator/default.yaml" in names
    assert any(n.endswith("entry_points.txt") for n in names)
    # every module of every room: the image must import what the daemon imports
    for room in rooms:
        for path in (REPO / room).rglob("*.py"):
            assert path.relative_to(REPO).as_posix() in names, path


@pytest.mark.parametrize("config", ["deploy/container/config.yaml", "deploy/compose/llm-vitals.yaml"])
def test_shipped_configs_are_valid(config: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VITALS_TOKEN", "test-token")
    s = load_settings(REPO / config)
    assert s.http.port == 9464 and s.check_secrets() == []


def test_compose_stack_mounts_what_exists() -> None:
    c = yaml.safe_load((COMPOSE_DIR / "docker-compose.yml").read_text())
    svc = c["services"]
    assert set(svc) == {"llm-vitals", "prometheus", "alertmanager", "influxdb", "grafana"}
    for name, s in svc.items():
        for v in s.get("volumes", []):
            src = v.split(":")[0]
            if src.startswith("."):
                assert (COMPOSE_DIR / src).exists(), (name, v)
            else:
                assert src in c["volumes"], (name, v)
    build = svc["llm-vitals"]["build"]
    assert (COMPOSE_DIR / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    # the services find each other by the names their configs use
    vitals = yaml.safe_load((COMPOSE_DIR / "llm-vitals.yaml").read_text())
    assert vitals["influxdb"]["url"] == "http://influxdb:8086"
    prom = yaml.safe_load((COMPOSE_DIR / "prometheus.yml").read_text())
    assert prom["scrape_configs"][0]["static_configs"][0]["targets"] == ["llm-vitals:9464"]
    assert prom["scrape_configs"][0]["job_name"] == "llm-vitals"  # LLMVitalsExporterDown matches the job
    ds = yaml.safe_load((REPO / "grafana" / "provisioning" / "datasources" / "llm-vitals.yaml").read_text())
    urls = {d["type"]: d["url"] for d in ds["datasources"]}
    assert urls == {"prometheus": "http://prometheus:9090", "influxdb": "http://influxdb:8086"}
    # every published port stays on loopback
    for s in svc.values():
        for p in s.get("ports", []):
            assert p.startswith("127.0.0.1:"), p


def test_lock_file_pins_every_dependency_with_hashes() -> None:
    """The image installs requirements.lock with --require-hashes: every runtime dependency
    of pyproject.toml is in it at one version, each with its hashes (regenerate: README)."""
    import re
    import tomllib

    lock = (REPO / "requirements.lock").read_text()
    pinned = {m.group(1).lower().replace("_", "-"): m.group(2) for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", lock, re.M)}
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        name = re.match(r"[A-Za-z0-9_.-]+", dep).group(0).lower().replace("_", "-")  # type: ignore[union-attr]
        assert name in pinned, f"{name} is not in requirements.lock: regenerate it"
    blocks = re.split(r"(?m)^(?=[A-Za-z0-9_.-]+==)", lock)[1:]
    assert blocks and all("--hash=sha256:" in b for b in blocks)
    assert "--require-hashes -r requirements.lock" in (REPO / "deploy" / "container" / "Dockerfile").read_text()
