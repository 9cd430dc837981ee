"""/metrics text, byte-for-byte what prometheus_client's generate_latest writes, in a
fraction of its time, built on the event loop in slices (render_body).

generate_latest (0.26) validates and escapes every label name of every sample: at 1,000
targets (~300k samples) one scrape took 8 s of CPU, past Prometheus' default 10 s
scrape timeout on a loaded host. Here each distinct label set is escaped once per scrape
and the compact histogram families write their lines directly from their rows
(`text()`), so the sample objects are never built. Anything unusual (a metric name
outside the legacy charset, an OpenMetrics-only type) goes through generate_latest.
"""

from __future__ import annotations

import asyncio
import gzip
import re
import time
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.utils import floatToGoString

# Work per loop step while /metrics renders (the scrape is not latency-sensitive; probes are).
RENDER_SLICE = 0.0005
RENDER_SLICE_MAX = 0.02  # the loop-lag budget of a scrape (issue 15)
# Lines of a family per piece: ~20 KB, well under a millisecond of formatting and deflating
# (1,000 lines were 5-12 ms on a loaded 2-core VM: the loop was held that long per step).
CHUNK_LINES = 200

_LEGACY_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_PLAIN_TYPES = {"counter", "gauge", "histogram", "summary", "untyped", "unknown"}
_OM_SUFFIXES = ("_created", "_gsum", "_gcount")


def go_float(d: float) -> str:
    """floatToGoString, the same text for every value, in half its time: a finite float
    whose repr has its point within the first six places is written as repr (what
    floatToGoString does after its checks for infinities, NaN and Go's earlier switch to
    exponents); anything else goes to it. Formatting the ~50k values of a 1,000-target
    scrape was over half the render's CPU."""
    s = repr(d)
    dot = s.find(".")
    if 0 < dot <= 6 and type(d) is float:
        return s
    return floatToGoString(d)


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
        line = f"{s.name}{lab} {go_float(s.value)}{ts}\n"
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


def chunks(registry: CollectorRegistry) -> Iterator[str]:
    """The exposition in pieces of about a millisecond of work each: a family's header
    lines always start a piece of their own (render_body converts headers to OpenMetrics
    piece by piece), then its samples a few hundred rows at a time (`text_chunks`)."""
    collectors = getattr(registry, "_collector_to_names", None)
    if collectors is None:  # a prometheus_client without it: the slow, sure path
        yield generate_latest(registry).decode("utf-8")
        return
    cache: dict[tuple[tuple[str, str], ...], str] = {}
    for collector in list(collectors):
        pieces = getattr(collector, "text_chunks", None)
        if callable(pieces):
            yield from pieces()
            continue
        text = getattr(collector, "text", None)
        if callable(text):
            yield text()
            continue
        for metric in collector.collect():
            chunk = _generic(metric, cache)
            if chunk is None:
                one = CollectorRegistry()
                one.register(_One(metric))
                chunk = generate_latest(one).decode("utf-8")
            yield chunk


def render(registry: CollectorRegistry) -> bytes:
    return "".join(chunks(registry)).encode("utf-8")


def render_openmetrics(registry: CollectorRegistry) -> bytes:
    """OpenMetrics text, what prometheus_client.openmetrics.exposition.generate_latest writes.

    Without `_created` samples (the daemon exports none) the two formats differ only in a
    counter family's HELP/TYPE name (without `_total`) and the `# EOF` line, so the fast
    text is converted instead of rendered twice as slowly (tests/sinks/test_exposition.py)."""
    if _use_created():
        from prometheus_client.openmetrics.exposition import generate_latest as om_latest

        return om_latest(registry)
    return ("".join(_om_headers(c) for c in chunks(registry)) + "# EOF\n").encode("utf-8")


def _om_headers(chunk: str) -> str:
    """A piece of the text format as OpenMetrics: only pieces that start with a family's
    header can hold one (chunks()), and only a counter's header lines change."""
    if not chunk.startswith("# HELP "):
        return chunk
    families = chunk.split("# HELP ")
    for i in range(1, len(families)):
        help_line, _, rest = families[i].partition("\n")
        type_line, _, body = rest.partition("\n")
        name, _, doc = help_line.partition(" ")
        if name.endswith("_total") and type_line == f"# TYPE {name} counter":
            base = name.removesuffix("_total")
            families[i] = f"{base} {doc}\n# TYPE {base} counter\n{body}"
    return "# HELP ".join(families)


async def render_body(registry: CollectorRegistry, openmetrics: bool, gzipped: bool,
                      slice_s: float = RENDER_SLICE) -> bytes:
    """/metrics on the event loop, handing it back every `slice_s` of work.

    A worker thread does not keep the loop free: it holds the GIL for ~5 ms switch
    intervals at a time, and the GC collections its allocations trigger stop every
    thread. Here the loop is held for one slice at a time (0.5 ms, up to 20 ms when the
    scrape has taken seconds) plus one piece of chunks() and its deflating, and a gzipped
    scrape never holds the whole plain text in memory."""
    if openmetrics and _use_created():  # only the slow path writes OpenMetrics `_created`
        body = render_openmetrics(registry)
        return gzip.compress(body, compresslevel=1) if gzipped else body
    # level 1: a fifth of the CPU of level 9 for ~10% more bytes on this text
    deflate = zlib.compressobj(1, zlib.DEFLATED, 31) if gzipped else None  # wbits 31: gzip framing
    out: list[bytes] = []
    # On a starved host (the loop waits for a CPU) every hand-back can cost a whole round
    # of the loop: the slice grows with the time the scrape has taken, to RENDER_SLICE_MAX
    # after 10 s, so that a scrape still ends inside Prometheus' default 10 s timeout.
    begun = time.monotonic()
    budget = slice_s
    deadline = time.perf_counter() + budget
    for chunk in chunks(registry):
        data = (_om_headers(chunk) if openmetrics else chunk).encode("utf-8")
        out.append(deflate.compress(data) if deflate is not None else data)
        if time.perf_counter() >= deadline:
            await asyncio.sleep(0)
            taken = time.monotonic() - begun
            budget = min(RENDER_SLICE_MAX, max(slice_s, slice_s + (RENDER_SLICE_MAX - slice_s) * taken / 10.0))
            deadline = time.perf_counter() + budget
    if openmetrics:
        out.append(deflate.compress(b"# EOF\n") if deflate is not None else b"# EOF\n")
    if deflate is not None:
        out.append(deflate.flush())
    return b"".join(out)


def _use_created() -> bool:
    import prometheus_client.metrics as pm

    return bool(getattr(pm, "_use_created", True))


class _One:
    def __init__(self, metric: Any) -> None:
        self._metric = metric

    def collect(self) -> Iterable[Any]:
        return [self._metric]
