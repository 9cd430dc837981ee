"""docs/ is generated from the code: a stale reference or schema fails here."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import pytest
import yaml

from daemon import reference
from tests.factories import REPO


def test_generated_reference_is_current() -> None:
    stale = [str(p.relative_to(REPO)) for p, text in reference.generated().items()
             if not p.exists() or p.read_text() != text]
    assert not stale, f"run `python -m daemon.reference` and commit: {stale}"


def test_every_config_key_is_in_the_reference() -> None:
    doc = (REPO / "docs" / "configuration.md").read_text()
    for key in ("region", "defaults.interval", "providers[].models", "alerts.route.group_wait",
                "alerts.receivers[].slack.channel", "influxdb.spool_max_points", "detector"):
        assert f"| `{key}` |" in doc, key
    assert "`LLM_VITALS_DEFAULTS__INTERVAL`" in doc


def test_config_schema_command_validates_the_shipped_configs() -> None:
    out = subprocess.run([sys.executable, "-m", "daemon.cli", "config-schema"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    schema = json.loads(out)
    assert schema == json.loads((REPO / "docs" / "config.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    shipped = [REPO / "daemon" / "demo.yaml", REPO / "deploy" / "systemd" / "config.example.yaml",
               REPO / "deploy" / "container" / "config.yaml", REPO / "deploy" / "compose" / "llm-vitals.yaml"]
    for path in shipped:
        errors = [e.message for e in validator.iter_errors(yaml.safe_load(path.read_text()))]
        assert not errors, f"{path.name}: {errors}"


@pytest.mark.parametrize("bad", [{"defaults": {"interval": "soon"}}, {"regoin": "x"},
                                 {"providers": [{"name": "a", "kind": "openai"}]}])
def test_config_schema_rejects_what_the_loader_rejects(bad: dict[str, object]) -> None:
    validator = jsonschema.Draft202012Validator(reference.config_schema())
    assert list(validator.iter_errors(bad))


def test_metric_reference_lists_every_exported_family() -> None:
    from prometheus_client import CollectorRegistry

    from daemon.metrics import Metrics

    reg = CollectorRegistry()
    Metrics(reg)
    names = {fam.name for fam in reg.collect()}
    doc = (REPO / "docs" / "metrics.md").read_text()
    for name in names:
        suffix = "_total" if f"`{name}_total`" in doc else ""
        assert f"| `{name}{suffix}` |" in doc, name
