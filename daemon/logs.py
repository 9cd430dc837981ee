"""structlog setup: JSON lines for machines, a readable console on a TTY. Logs go to stderr.

Every value is redacted against the process's known secrets (core.redact.SECRETS)
before it is rendered: an error echoed by a provider or a sink may carry one."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from core.redact import SECRETS


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return SECRETS.redact(value)
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    return value


_OURS = frozenset({"event", "level", "timestamp"})  # written by the code, never by a server


def redact_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in event.items():
        if key not in _OURS:
            event[key] = _scrub(value)
    return event


# Loggers of libraries that say, in their own words, what we already log as an event of ours
# (apscheduler's "Execution of job ... skipped" is probe_skipped, counted by reason): only
# their errors pass.
_QUIETER = ("apscheduler.scheduler", "apscheduler.executors.default")


class _StdlibHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks our handler, so configuring twice does not print every line twice."""


def configure(level: str = "info", json: bool | None = None) -> None:
    if json is None:
        json = not sys.stderr.isatty()
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    # Libraries log through the standard library: render their lines like ours (one JSON
    # object a line, redacted), never as bare text in the middle of a JSON log stream.
    handler = _StdlibHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.processors.add_log_level, structlog.processors.TimeStamper(fmt="iso", utc=True),
                           structlog.stdlib.ExtraAdder(), redact_secrets],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    ))
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not isinstance(h, _StdlibHandler)] + [handler]
    root.setLevel(logging.WARNING)
    for name in _QUIETER:
        logging.getLogger(name).setLevel(logging.ERROR)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
