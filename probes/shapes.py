"""Shape checks for provider JSON: what a parser expects, or a short StreamProtocolError.

A provider (or anything posing as one) can send any JSON at all. Each parser reads its
fields through these, so a list where an object belongs, a number where text belongs or
a string where a count belongs becomes a `stream_error` naming the field, never an
AttributeError deep in the probe. Counts are checked for type here; their range (negative,
fractional, absurd) is judged later against what the request allowed (probes/timing.py).
"""

from __future__ import annotations

import json
import math
from typing import Any

from probes.protocol import StreamProtocolError, Usage

__all__ = ["arr", "flag", "index", "num", "obj", "opt_text", "text", "tool_args", "usage"]


def _kind(v: Any) -> str:
    return "null" if v is None else {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(v), "a number")


def _bad(what: str, want: str, v: Any) -> StreamProtocolError:
    return StreamProtocolError(f"unexpected JSON shape: {what} is {_kind(v)}, expected {want}")


def obj(v: Any, what: str) -> dict[str, Any]:
    """An object; absent (null) reads as empty."""
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise _bad(what, "an object", v)
    return v


def arr(v: Any, what: str) -> list[Any]:
    """A list; absent (null) reads as empty."""
    if v is None:
        return []
    if not isinstance(v, list):
        raise _bad(what, "a list", v)
    return v


def text(v: Any, what: str) -> str:
    """A string; absent (null) reads as empty."""
    if v is None:
        return ""
    if not isinstance(v, str):
        raise _bad(what, "a string", v)
    return v


def opt_text(v: Any, what: str) -> str | None:
    """A string or absent; an empty string reads as absent."""
    return text(v, what) or None


def flag(v: Any, what: str) -> bool:
    if v is None:
        return False
    if not isinstance(v, bool):
        raise _bad(what, "true or false", v)
    return v


def num(v: Any, what: str) -> float | None:
    """A finite number or absent (a non-finite one reads as absent)."""
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise _bad(what, "a number", v)
    f = float(v)
    return f if math.isfinite(f) else None


def index(v: Any, what: str, default: int = 0) -> int:
    """A small non-negative integer (a position in the reply); absent reads as `default`."""
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 1 << 16:
        raise _bad(what, "a small non-negative integer", v)
    return v


def tool_args(v: Any, what: str) -> str:
    """Tool-call arguments that arrive whole as an object (Gemini, Ollama) → JSON text."""
    return "" if v is None else json.dumps(obj(v, what), separators=(",", ":"))


def usage(where: str, *, input_tokens: Any = None, output_tokens: Any = None,
          reasoning_tokens: Any = None) -> Usage:
    """Token counts from a usage report. A count that is a number but not a non-negative
    integer (-5, 2.5, NaN) is dropped and the report marked `suspect`."""
    counts: list[int | None] = []
    suspect = False
    for name, v in (("input", input_tokens), ("output", output_tokens), ("reasoning", reasoning_tokens)):
        if v is None:
            counts.append(None)
            continue
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise _bad(f"{where} {name} token count", "a number", v)
        if isinstance(v, float) and not (math.isfinite(v) and v.is_integer()):
            v = -1
        if v < 0:
            counts.append(None)
            suspect = True
        else:
            counts.append(int(v))
    return Usage(counts[0], counts[1], counts[2], suspect=suspect)
