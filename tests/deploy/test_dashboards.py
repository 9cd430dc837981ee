"""Grafana dashboards (grafana/): committed JSON is what grafana/build.py builds, panels are
well formed, and every query names only metrics, labels, fields and tags that exist
(daemon.metrics registry + deploy/prometheus recording rules; the InfluxDB point schema)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

from daemon.metrics import TARGET
from daemon.sinks.influx_points import FLOAT_FIELDS, INT_FIELDS
from tests.deploy.factories import (
    DASHBOARDS,
    NEEDS_FULL,
    dashboards,
    known_series,
    promql_selectors,
    queries,
)
from tests.factories import REPO

PROVISIONING = REPO / "grafana" / "provisioning"

INFLUX_TAGS = {"probe": {"provider", "model", "probe", "region", "outcome"},
               "alert": {"rule", "severity", "state", *TARGET}}
INFLUX_FIELDS = {"probe": {*FLOAT_FIELDS, *INT_FIELDS, "ok", "tokens_source", "error"},
                 "alert": {"fingerprint", "summary", "value"}}


















def grouping_labels(expr: str) -> set[str]:
    out: set[str] = set()
    for m in re.finditer(r"\b(?:by|on|ignoring|without)\s*\(([^)]*)\)", expr):
        out |= {s.strip() for s in m.group(1).split(",") if s.strip()}
    return out


# -- tests ---------------------------------------------------------------------------
def test_committed_dashboards_are_what_build_py_builds() -> None:
    r = subprocess.run([sys.executable, str(REPO / "grafana" / "build.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_the_five_dashboards_exist() -> None:
    uids = {d["uid"] for d in dashboards().values()}
    assert uids == {"llm-vitals-fleet", "llm-vitals-provider", "llm-vitals-regions", "llm-vitals-self",
                    "llm-vitals-fleet-influxql"}


@pytest.mark.parametrize("name", sorted(p.name for p in DASHBOARDS.glob("*.json")))
def test_dashboard_is_well_formed(name: str) -> None:
    d = dashboards()[name]
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in d["templating"]["list"]}
    builtin = {"__rate_interval", "__interval", "__range", "timeFilter", "__all", "tag_provider", "tag_model",
               "tag_outcome"}
    for p in d["panels"]:
        gp = p["gridPos"]
        assert gp["x"] >= 0 and gp["x"] + gp["w"] <= 24, p["title"]
        if p["type"] in ("row", "text"):
            continue
        assert p["datasource"]["uid"] in ("${datasource}", "${influxdb}"), p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"], p["title"]
            q = t.get("expr") or t.get("query")
            used = set(re.findall(r"\$\{?([A-Za-z_]+)", " ".join((q, t.get("legendFormat", ""), t.get("alias", "")))))
            assert used <= variables | builtin, (p["title"], used - variables - builtin)
    # the overlap-free flow layout: no two panels share a cell
    cells: set[tuple[int, int]] = set()
    for p in d["panels"]:
        gp = p["gridPos"]
        for x in range(gp["x"], gp["x"] + gp["w"]):
            for y in range(gp["y"], gp["y"] + gp["h"]):
                assert (x, y) not in cells, p["title"]
                cells.add((x, y))


def test_selector_parser_understands_our_promql() -> None:
    got = list(promql_selectors(
        'histogram_quantile(0.95, sum by (le, provider) (rate(llm_vitals_probe_ttft_seconds_bucket{provider=~"$provider"}[5m])))'
        ' / ignoring (quantile) llm_vitals_latency_quantile_seconds_count or vector(0) and on(provider) up'))
    assert got == [("llm_vitals_probe_ttft_seconds_bucket", {"provider"}),
                   ("llm_vitals_latency_quantile_seconds_count", set()), ("up", set())]


@pytest.mark.parametrize("name", sorted(p.name for p in DASHBOARDS.glob("*.json")))
def test_promql_uses_only_metrics_and_labels_that_exist(name: str) -> None:
    known = known_series()
    all_labels = set().union(*(v for v in known.values() if v))
    problems = []
    for where, kind, q in queries(dashboards()[name]):
        if kind == "variable":
            q = re.sub(r"label_values\((.*),\s*(\w+)\)$", r"\1", q)
        if kind == "influxql":
            continue
        for metric, labels in promql_selectors(q):
            if metric not in known:
                problems.append(f"{where}: unknown metric {metric}")
            elif known[metric] is not None and not labels <= known[metric]:  # type: ignore[operator]
                problems.append(f"{where}: {metric} has no label(s) {sorted(labels - known[metric])}")  # type: ignore[operator]
        unknown = grouping_labels(q) - all_labels - {"le"}
        if unknown:
            problems.append(f"{where}: groups by unknown label(s) {sorted(unknown)}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", sorted(p.name for p in DASHBOARDS.glob("*.json")))
def test_panels_that_need_full_detail_say_so(name: str) -> None:
    """The default `metrics.detail: standard` feeds every panel not marked as needing `full`,
    and no panel is marked without reason."""
    standard = known_series("standard")
    problems = []
    for p in dashboards()[name]["panels"]:
        exprs = [t["expr"] for t in p.get("targets", []) if "expr" in t]
        missing = sorted({m for q in exprs for m, _ in promql_selectors(q) if m not in standard})
        marked = NEEDS_FULL in p.get("description", "")
        if missing and not marked:
            problems.append(f"{p['title']}: uses {missing} (full only) but does not say it needs full")
        if marked and not missing:
            problems.append(f"{p['title']}: says it needs full but works on standard")
    assert not problems, "\n".join(problems)


def test_influxql_uses_only_fields_and_tags_that_exist() -> None:
    d = dashboards()["llm-vitals-fleet-influxql.json"]
    checked = 0
    for where, kind, q in queries(d):
        if kind != "influxql":
            continue
        measurement = re.search(r'FROM "(\w+)"', q).group(1)  # type: ignore[union-attr]
        assert measurement in INFLUX_FIELDS, where
        select, _, rest = q.partition(" FROM ")
        if "KEY" in q:  # SHOW TAG VALUES ... WITH KEY = "tag"
            tags = set(re.findall(r'KEY = "(\w+)"', q))
            fields: set[str] = set()
        else:
            fields = set(re.findall(r'"(\w+)"', select))
            where_part, _, group_part = rest.partition("GROUP BY")
            tags = set(re.findall(r'"(\w+)"\s*(?:=~|!=|=|<>)', where_part)) | set(re.findall(r'"(\w+)"', group_part))
        assert fields <= INFLUX_FIELDS[measurement], (where, fields - INFLUX_FIELDS[measurement])
        assert tags <= INFLUX_TAGS[measurement], (where, tags - INFLUX_TAGS[measurement])
        checked += 1
    assert checked >= 10


def test_provisioning_matches_the_dashboards() -> None:
    ds = yaml.safe_load((PROVISIONING / "datasources" / "llm-vitals.yaml").read_text())["datasources"]
    uids = {d["uid"]: d for d in ds}
    assert uids["llm-vitals-prometheus"]["type"] == "prometheus"
    assert uids["llm-vitals-influxdb"]["type"] == "influxdb"
    assert uids["llm-vitals-influxdb"]["jsonData"]["dbName"] == "llm_vitals"
    for d in dashboards().values():
        for v in d["templating"]["list"]:
            if v["type"] == "datasource":
                assert v["current"]["value"] in uids, (d["uid"], v["name"])
    prov = yaml.safe_load((PROVISIONING / "dashboards" / "llm-vitals.yaml").read_text())["providers"][0]
    compose = yaml.safe_load((REPO / "deploy" / "compose" / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert any(m.endswith(":" + prov["options"]["path"] + ":ro") and "grafana/dashboards" in m for m in mounts), mounts
