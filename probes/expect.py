"""Probe expectations: the provider answered, but did it answer right? (docs/architecture.md §3)."""

from __future__ import annotations

import json
import re
from functools import lru_cache

from probes.target import Expectation

LENGTH_REASONS = frozenset({"length", "max_tokens", "max_output_tokens"})


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def check(expect: Expectation | None, text: str, output_tokens: int | None,
          tool_calls: list[tuple[str, str]] | None = None) -> str | None:
    """None when the reply meets the expectation, else a short reason. `tool_calls` are
    the (name, arguments) of the reply's tool calls."""
    if expect is None:
        return None
    if expect.tool_call is not None:
        reason = _check_tool(expect.tool_call, tool_calls or [])
        if reason:
            return reason
    if expect.contains is not None and expect.contains.lower() not in text.lower():
        return f"reply does not contain {expect.contains!r}: {_snippet(text)}"
    if expect.regex is not None and not _compiled(expect.regex).search(text):
        return f"reply does not match /{expect.regex}/: {_snippet(text)}"
    if expect.json:
        body = _strip_fence(text)
        try:
            json.loads(body)
        except json.JSONDecodeError as exc:
            return f"reply is not valid JSON ({exc.msg}): {_snippet(text)}"
    if expect.min_tokens is not None and (output_tokens or 0) < expect.min_tokens:
        return f"reply has {output_tokens or 0} tokens, expected at least {expect.min_tokens}"
    return None


def tool_arguments(calls: list[tuple[str, str]]) -> str | None:
    """None when every tool call's arguments are valid JSON, else a short reason."""
    for name, arguments in calls:
        try:
            json.loads(arguments or "{}")
        except json.JSONDecodeError as exc:
            return f"tool call {_snippet(name or '(no name)')} arguments are not valid JSON ({exc.msg}): " \
                f"{_snippet(arguments)}"
    return None


def _check_tool(want: str, calls: list[tuple[str, str]]) -> str | None:
    if not calls:
        return f"reply has no tool call, expected a call to {want!r}"
    name = calls[0][0]
    if name != want:
        return f"reply calls tool {_snippet(name or '(no name)')}, expected {want!r}"
    return tool_arguments(calls[:1])


def _strip_fence(text: str) -> str:
    """Models often wrap JSON in a ```json fence; the JSON inside is what counts."""
    s = text.strip()
    if s.startswith("```"):
        s = s.split("\n", 1)[1] if "\n" in s else ""
        if s.rstrip().endswith("```"):
            s = s.rstrip()[:-3]
    return s.strip()


def _snippet(text: str, limit: int = 60) -> str:
    t = " ".join(text.split())
    return repr(t if len(t) <= limit else t[: limit - 1] + "…")
