"""One self-contained HTML document (the status page, a report): uPlot, its CSS, the shared
chart code and the page's own script inline, so it opens offline and needs no CDN."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any


@cache
def asset(name: str) -> str:
    """A file shipped in daemon/static (package data: a wheel carries it)."""
    return (resources.files("daemon") / "static" / name).read_text(encoding="utf-8")


def script_json(value: Any) -> str:
    """JSON safe inside <script type="application/json">: no `</script>` or `<!--` can close it."""
    return json.dumps(value, default=str).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def document(title: str, boot: Mapping[str, Any], app_script: str) -> str:
    """One self-contained HTML document: uPlot, the shared chart code and `app_script` inline."""
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{html.escape(title)}</title>"
        # first: errors of every later script land in a DOM attribute a test (or a person) can read
        "<script>window.addEventListener('error',function(e){var r=document.documentElement;"
        "r.setAttribute('data-errors',(r.getAttribute('data-errors')||'')+(e.message||'error')+'\\n')});"
        "window.addEventListener('unhandledrejection',function(e){var r=document.documentElement;"
        "r.setAttribute('data-errors',(r.getAttribute('data-errors')||'')+String(e.reason)+'\\n')});</script>"
        f"<style>{asset('uPlot.min.css')}\n{asset('vitals.css')}</style></head>"
        "<body><div id=\"app\" aria-live=\"polite\"></div>"
        f"<script type=\"application/json\" id=\"boot\">{script_json(boot)}</script>"
        f"<script>{asset('uPlot.iife.min.js')}</script>"
        f"<script>{asset('charts.js')}</script>"
        f"<script>{app_script}</script>"
        "</body></html>"
    )
