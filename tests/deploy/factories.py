"""Shared helpers for the deploy tests."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import yaml

from daemon.metrics import TARGET, Metrics, QuantileCollector, exported
from tests.factories import REPO

RULES = REPO / "deploy" / "prometheus"


NEEDS_FULL = "Needs `metrics.detail: full`"  # grafana/build.py marks such panels with this


def recording_rules() -> dict[str, str]:
    out = {}
    for f in sorted(RULES.glob("*.rules.yml")):
        for group in yaml.safe_load(f.read_text())["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    out[rule["record"]] = rule["expr"]
    return out


def known_series(detail: str = "full") -> dict[str, set[str] | None]:
    known: dict[str, set[str] | None] = dict(exported_metrics(detail))
    known.update({name: recorded_labels(expr) for name, expr in recording_rules().items()})
    known.update(PROMETHEUS_SERIES)
    return known


# -- what the dashboards ask ---------------------------------------------------------
def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def queries(dash: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(where, kind, query) for every panel target, annotation and query variable."""
    for p in dash["panels"]:
        for t in p.get("targets", []):
            if "expr" in t:
                yield f"{p['title']} [{t['refId']}]", "promql", t["expr"]
            elif "query" in t:
                yield f"{p['title']} [{t['refId']}]", "influxql", t["query"]
    for a in dash["annotations"]["list"]:
        if "expr" in a:
            yield f"annotation {a['name']}", "promql", a["expr"]
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            yield f"variable ${v['name']}", "influxql" if v["datasource"]["type"] == "influxdb" else "variable", q


def promql_selectors(expr: str) -> Iterator[tuple[str, set[str]]]:
    """(metric name, matcher label names) of each vector selector; skips functions/keywords."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # blank string literals
    text = re.sub(r"\[[^\]]*\]", "", text)  # range and subquery durations
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\{?\w+\}?", " ", text)  # dashboard variables outside selectors
    for m in _SELECTOR.finditer(text):
        name, braces = m.group(1), m.group(2)
        if not braces and text[m.end():].lstrip().startswith("("):
            continue  # a function or aggregation
        if name.lower() in _PROMQL_WORDS or (m.start() > 0 and text[m.start() - 1].isdigit()):
            continue
        labels = set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", braces or ""))
        yield name, labels


DASHBOARDS = REPO / "grafana" / "dashboards"


PROMETHEUS_SERIES = {"up": {"job", "instance"}, "ALERTS": None}  # None: any label


# -- what exists ---------------------------------------------------------------------
def exported_metrics(detail: str = "full") -> dict[str, set[str]]:
    """Every series name the daemon exports at `detail`, with its label names."""
    m = Metrics(detail=detail)
    out: dict[str, set[str]] = {}
    exported_names = {fam.name for fam in m.registry.collect()}
    for obj in vars(m).values():
        name, labels, kind = getattr(obj, "_name", None), getattr(obj, "_labelnames", None), getattr(obj, "_type", None)
        if name is None or labels is None or name not in exported_names:
            continue
        labels = set(labels)
        if kind == "counter":
            out[name + "_total"] = labels
            out[name + "_created"] = labels
        elif kind == "histogram":
            out[name + "_bucket"] = labels | {"le"}
            for suffix in ("_count", "_sum", "_created"):
                out[name + suffix] = labels
        else:
            out[name] = labels
    if exported("quantiles", detail):
        q = QuantileCollector.NAME
        base = {*TARGET, "metric", "window"}
        out[q] = base | {"quantile"}
        out[q + "_count"] = base
        out[q + "_sum"] = base
    return {k: v | SCRAPE_LABELS for k, v in out.items()}


def recorded_labels(expr: str) -> set[str]:
    m = re.search(r"\b(?:sum|count|max|min|avg) by \(([^)]*)\)", expr)
    return {s.strip() for s in m.group(1).split(",")} - {"le"} if m else set()


_PROMQL_WORDS = {"bool", "and", "or", "unless", "offset", "inf", "nan"}


_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*(\{[^}]*\})?")


# Labels Prometheus adds (target labels of the scrape) or that belong to its own series.
SCRAPE_LABELS = {"job", "instance"}


