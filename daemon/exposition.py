"""/metrics text, byte-for-byte what prometheus_client's generate_latest writes, in a
fraction of its time.

generate_latest (0.26) validates and escapes every label name of every sample: at 1,000
targets (~300k samples) one scrape took 8 s of CPU, past Prometheus' default 10 s
scrape timeout on a loaded host. Here each distinct label set is escaped once per scrape
and the compact histogram families write their lines directly from their rows
(`text()`), so the sample objects are never built. Anything unusual (a metric name
outside the legacy charset, an OpenMetrics-only type) goes through generate_latest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.utils import floatToGoString

_LEGACY_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_PLAIN_TYPES = {"counter", "gauge", "histogram", "summary", "untyped", "unknown"}
_OM_SUFFIXES = ("_created", "_gsum", "_gcount")


def escape_value(v: str) -> str:
    return v.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def label_string(labels: Iterable[tuple[str, str]]) -> str:
    """`{a="1",b="2"}` with names sorted, as generate_latest orders them."""
    items = sorted(labels)
    return "{" + ",".join(f'{k}="{escape_value(v)}"' for k, v in items) + "}" if items else ""


def _doc(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def header(name: str, documentation: str, mtype: str) -> str:
    return f"# HELP {name} {_doc(documentation)}\n# TYPE {name} {mtype}\n"


def created_section(name: str, documentation: str, lines: list[str]) -> str:
    """The `_created` samples generate_latest moves into a gauge family after the rest."""
    return header(name + "_created", documentation, "gauge") + "".join(lines) if lines else ""


def _generic(metric: Any, cache: dict[tuple[tuple[str, str], ...], str]) -> str | None:
    mtype = metric.type
    if mtype not in _PLAIN_TYPES or not _LEGACY_NAME.match(metric.name):
        return None
    mname = metric.name + "_total" if mtype == "counter" else metric.name
    out = [header(mname, metric.documentation, "untyped" if mtype == "unknown" else mtype)]
    om: dict[str, list[str]] = {}
    for s in metric.samples:
        if not _LEGACY_NAME.match(s.name) or any(not _LEGACY_NAME.match(k) for k in s.labels):
            return None
        key = tuple(s.labels.items())
        lab = cache.get(key)
        if lab is None:
            lab = cache[key] = label_string(key)
        ts = "" if s.timestamp is None else f" {int(float(s.timestamp) * 1000):d}"
        line = f"{s.name}{lab} {floatToGoString(s.value)}{ts}\n"
        for suffix in _OM_SUFFIXES:
            if s.name == metric.name + suffix:
                om.setdefault(suffix, []).append(line)
                break
        else:
            out.append(line)
    for suffix, lines in sorted(om.items()):
        out.append(header(metric.name + suffix, metric.documentation, "gauge"))
        out.extend(lines)
    return "".join(out)


def render(registry: CollectorRegistry) -> bytes:
    collectors = getattr(registry, "_collector_to_names", None)
    if collectors is None:  # a prometheus_client without it: the slow, sure path
        return generate_latest(registry)
    cache: dict[tuple[tuple[str, str], ...], str] = {}
    out: list[str] = []
    for collector in list(collectors):
        text = getattr(collector, "text", None)
        if callable(text):
            out.append(text())
            continue
        for metric in collector.collect():
            chunk = _generic(metric, cache)
            if chunk is None:
                one = CollectorRegistry()
                one.register(_One(metric))
                chunk = generate_latest(one).decode("utf-8")
            out.append(chunk)
    return "".join(out).encode("utf-8")


def render_openmetrics(registry: CollectorRegistry) -> bytes:
    """OpenMetrics text, what prometheus_client.openmetrics.exposition.generate_latest writes.

    Without `_created` samples (the daemon exports none) the two formats differ only in a
    counter family's HELP/TYPE name (without `_total`) and the `# EOF` line, so the fast
    text is converted instead of rendered twice as slowly (tests/sinks/test_exposition.py)."""
    if _use_created():
        from prometheus_client.openmetrics.exposition import generate_latest as om_latest

        return om_latest(registry)
    text = render(registry).decode("utf-8")
    # Family by family, on the two header lines only: a regex over the whole body (4.6 MB
    # at 1,000 targets) held the GIL for ~30 ms, stalling the event loop during each scrape.
    families = text.split("# HELP ")
    for i in range(1, len(families)):
        help_line, _, rest = families[i].partition("\n")
        type_line, _, body = rest.partition("\n")
        name, _, doc = help_line.partition(" ")
        if name.endswith("_total") and type_line == f"# TYPE {name} counter":
            base = name.removesuffix("_total")
            families[i] = f"{base} {doc}\n# TYPE {base} counter\n{body}"
    return ("# HELP ".join(families) + "# EOF\n").encode("utf-8")


def _use_created() -> bool:
    import prometheus_client.metrics as pm

    return bool(getattr(pm, "_use_created", True))


class _One:
    def __init__(self, metric: Any) -> None:
        self._metric = metric

    def collect(self) -> Iterable[Any]:
        return [self._metric]
