"""Prometheus rules and Alertmanager configs (deploy/prometheus, deploy/alertmanager,
deploy/compose): promtool check/test, amtool check-config and routing, and every alert
has a unit test that fires and one that stays quiet, plus a runbook entry in docs/runbook.md."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.factories import known_series, promql_selectors, recording_rules
from tests.factories import REPO

PROM = REPO / "deploy" / "prometheus"
RULE_FILES = sorted(PROM.glob("*.rules.yml"))
UNIT_TESTS = sorted((PROM / "tests").glob("*.test.yml"))
AM_EXAMPLE = REPO / "deploy" / "alertmanager" / "alertmanager.yml"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (.ci/run installs it from Debian packages)")
    return path


def alerting_rules() -> dict[str, dict]:  # type: ignore[type-arg]
    out = {}
    for f in RULE_FILES:
        for g in yaml.safe_load(f.read_text())["groups"]:
            for r in g["rules"]:
                if "alert" in r:
                    out[r["alert"]] = r
    return out


def test_promtool_check_rules() -> None:
    r = subprocess.run([tool("promtool"), "check", "rules", *map(str, RULE_FILES)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_promtool_test_rules() -> None:
    r = subprocess.run([tool("promtool"), "test", "rules", *map(str, UNIT_TESTS)], capture_output=True, text=True,
                       cwd=PROM / "tests")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("SUCCESS") == len(UNIT_TESTS)


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for f in UNIT_TESTS:
        for t in yaml.safe_load(f.read_text())["tests"]:
            for case in t.get("alert_rule_test", []):
                (fires if case.get("exp_alerts") else quiet).add(case["alertname"])
    alerts = set(alerting_rules())
    assert alerts - fires == set(), "alerts without a test where they fire"
    assert alerts - quiet == set(), "alerts without a test where they stay quiet"
    assert len(alerts) >= 15


def test_default_alert_set() -> None:
    alerts = alerting_rules()
    # the built-in kinds (threshold, error rate, consecutive failures, content, anomaly, no data),
    # burn rate, cross-region quorum and the monitor's own health
    for name in ("LLMVitalsTargetDown", "LLMVitalsHighErrorRate", "LLMVitalsContentMismatch", "LLMVitalsTTFTHigh",
                 "LLMVitalsAnomaly", "LLMVitalsNoRecentProbe", "LLMVitalsErrorBudgetBurn", "LLMVitalsErrorBudgetBurnSlow",
                 "LLMVitalsLatencyBudgetBurn", "LLMVitalsProviderDownMultiRegion", "LLMVitalsExporterDown"):
        assert name in alerts
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("page", "ticket"), name
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"]), name


def test_rules_reference_only_metrics_that_exist() -> None:
    known = known_series("standard")  # the rules work on the default series budget
    problems = []
    exprs = list(recording_rules().items()) + [(n, r["expr"]) for n, r in alerting_rules().items()]
    for name, expr in exprs:
        for metric, labels in promql_selectors(expr):
            if metric not in known:
                problems.append(f"{name}: unknown metric {metric}")
            elif known[metric] is not None and not labels <= known[metric]:  # type: ignore[operator]
                problems.append(f"{name}: {metric} has no label(s) {sorted(labels - known[metric])}")  # type: ignore[operator]
    assert not problems, "\n".join(problems)


def test_every_alert_has_a_runbook_entry() -> None:
    doc = (REPO / "docs" / "runbook.md").read_text()
    headings = {re.sub(r"[^a-z0-9-]", "", h.strip().lower().replace(" ", "-")) for h in re.findall(r"^#+ (.*)$", doc, re.M)}
    for name, rule in alerting_rules().items():
        anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
        assert rule["annotations"]["runbook_url"] == f"docs/runbook.md#{name.lower()}"
        assert anchor in headings, f"docs/runbook.md has no heading for {name}"


@pytest.mark.parametrize("config", [AM_EXAMPLE, REPO / "deploy" / "compose" / "alertmanager.yml"],
                         ids=["example", "compose"])
def test_amtool_check_config(config: Path) -> None:
    r = subprocess.run([tool("amtool"), "check-config", str(config)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize(("labels", "receivers"), [
    (["alertname=LLMVitalsTargetDown", "severity=page", "provider=openai"], "llm-oncall-pager,llm-oncall-slack"),
    (["alertname=LLMVitalsTTFTHigh", "severity=ticket", "provider=openai"], "llm-team-email"),
    (["alertname=LLMVitalsSinkErrors", "severity=ticket"], "platform-slack"),
    (["alertname=LLMVitalsExporterDown", "severity=page"], "platform-slack"),
    (["alertname=ttft-p95-high", "provider=openai"], "llm-oncall-slack"),  # pushed by the daemon itself
])
def test_alertmanager_example_routes(labels: list[str], receivers: str) -> None:
    r = subprocess.run([tool("amtool"), "config", "routes", "test", f"--config.file={AM_EXAMPLE}", *labels],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == receivers


def test_inhibit_rules_name_real_alerts() -> None:
    alerts = set(alerting_rules())
    for config in (AM_EXAMPLE, REPO / "deploy" / "compose" / "alertmanager.yml"):
        for rule in yaml.safe_load(config.read_text()).get("inhibit_rules", []):
            for m in rule.get("source_matchers", []) + rule.get("target_matchers", []):
                if m.startswith("alertname=~"):
                    pattern = m.split("=~", 1)[1].strip('"')
                    assert any(re.fullmatch(pattern, a) for a in alerts), m
                    for alt in re.findall(r"\w+", pattern.split("(", 1)[1]):
                        assert "LLMVitals" + alt in alerts, (m, alt)
                elif m.startswith("alertname="):
                    assert m.split("=", 1)[1].strip('"') in alerts, m


def test_compose_prometheus_config() -> None:
    r = subprocess.run([tool("promtool"), "check", "config", str(REPO / "deploy" / "compose" / "prometheus.yml")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
