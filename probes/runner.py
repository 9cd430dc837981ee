"""run_probe: one streaming request, timed on arrival, turned into one ProbeResult.

Probes never retry: a failure must stay visible. Every failure mode ends as exactly one
outcome; nothing escapes as an exception except cancellation (a last-resort guard turns
even a bug into a recorded `stream_error`). What a response may cost is bounded
(ProbeLimits): line length, body size, reply text kept, and the usage it may claim.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog

from core.redact import SECRETS, clip, redact, url_secrets
from core.result import Outcome, ProbeResult
from core.retry_after import retry_after_seconds
from core.secrets import Secret
from probes import expect
from probes.chunked import body_pieces
from probes.framing import FramingError, new_decoder
from probes.httpclient import HEADERS, parsed_url, probe_client
from probes.netstream import arrival_ns
from probes.protocol import StreamProtocolError
from probes.registry import protocol_for
from probes.target import ProbeTarget
from probes.timing import Timeline, UsageBounds, derive

_KEPT_HEADER_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-")
_KEPT_HEADERS = frozenset({"retry-after", "retry-after-ms"})
_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-amzn-requestid", "x-goog-request-id")
_MAX_ERROR_BODY = 64 * 1024
_EMPTY = httpx.ByteStream(b"")
_MAX_ERROR = 500  # characters of error text kept, cut after redaction
# A usage report is believed up to the request's max_tokens times this, plus a little
# (providers count a stop token, and reasoning the budget allows).
USAGE_MARGIN = 2.0
USAGE_SLACK = 16
# Chat templates and provider-side wrapping add tokens to the prompt we sent.
INPUT_SLACK = 1024

log = structlog.get_logger("llm_vitals.probe")

# Called with the arrival time (perf_counter_ns) of every token-bearing event; the
# simulator benchmark uses it to compare our stamps with the server's write times.
TokenHook = Callable[[int], None]

__all__ = ["HEADERS", "TokenHook", "new_client", "prompt_for", "run_probe"]


def new_client(max_connections: int = 1000) -> httpx.AsyncClient:
    """A client for one-off probes (the daemon uses probes.clients.ClientPool)."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=200)
    return probe_client(limits=limits)


def prompt_for(target: ProbeTarget) -> str:
    if not target.probe.nonce:
        return target.probe.prompt
    # A fresh prefix defeats provider-side prompt caching (which would flatter TTFT).
    return f"[probe {uuid.uuid4().hex[:12]}] {target.probe.prompt}"


async def run_probe(
    client: httpx.AsyncClient,
    target: ProbeTarget,
    *,
    on_token: TokenHook | None = None,
) -> ProbeResult:
    started_at = datetime.now(UTC)  # for the guard only: the probe takes its own
    try:
        return await _probe(client, target, on_token)
    except Exception as exc:  # a bug, or input no check foresaw: still one recorded outcome
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = f"{tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}" if tb is not None else "?"
        # type and place only: the message may quote what the provider sent
        log.error("probe_internal_error", target=target.key, error_type=type(exc).__name__, where=where)
        return ProbeResult(
            provider=target.provider.name,
            model=target.model,
            probe=target.probe.name,
            region=target.region,
            started_at=started_at,
            outcome=Outcome.STREAM_ERROR,
            error=f"probe failed: internal error ({type(exc).__name__} at {where})",
        )


def usage_bounds(target: ProbeTarget, request_body: bytes) -> UsageBounds:
    """The most tokens this probe's request allows a provider to report."""
    p = target.probe
    allowed = p.max_tokens + ((p.reasoning_budget or 0) if p.reasoning else 0)
    return UsageBounds(max_output=int(allowed * USAGE_MARGIN) + USAGE_SLACK,
                       max_input=len(request_body) + INPUT_SLACK)


async def _probe(
    client: httpx.AsyncClient,
    target: ProbeTarget,
    on_token: TokenHook | None,
) -> ProbeResult:
    protocol = protocol_for(target.provider.kind)
    request = protocol.build_request(target, prompt_for(target))
    secrets = _secrets_of(target)
    limits = target.limits

    started_at = datetime.now(UTC)
    tl = Timeline(t0_ns=time.perf_counter_ns(), max_text_chars=limits.max_reply_chars)
    state: dict[str, Any] = {}
    outcome: Outcome | None = None
    error: str | None = None
    status: int | None = None
    kept: dict[str, str] = {}
    retry_after: float | None = None
    request_id: str | None = None
    tokens_before_error = 0

    # Reads need no timeout of their own: the probe's deadline (asyncio.timeout) bounds them.
    timeout = httpx.Timeout(
        connect=min(target.connect_timeout, target.timeout),
        read=None,
        write=target.timeout,
        pool=target.timeout,
    )
    try:
        async with asyncio.timeout(target.timeout):
            # Built directly (not client.stream): the URL is parsed once per target, and
            # client-level merging has nothing to add (no cookies, no params, no auth).
            http_request = httpx.Request(
                request.method,
                parsed_url(request.url),
                headers={**HEADERS, **request.headers},
                content=request.body,
                extensions={"timeout": timeout.as_dict(), "trace": _tracer(tl)},
            )
            resp = await client.send(http_request, stream=True)
            pieces: AsyncGenerator[tuple[int, bytes], None] | None = None
            try:
                net = resp.extensions.get("network_stream")
                # the socket read that completed the headers (the trace stamps after parsing)
                tl.headers_ns = arrival_ns(net)
                status = resp.status_code
                kept = _kept_headers(resp.headers)
                retry_after = _retry_after(resp.headers)
                request_id = next(
                    (resp.headers[h] for h in _REQUEST_ID_HEADERS if h in resp.headers), None
                )
                if status >= 400:
                    body = await _read_capped(resp)
                    tl.end_ns = time.perf_counter_ns()
                    outcome = Outcome.RATE_LIMITED if status == 429 else Outcome.HTTP_ERROR
                    error = protocol.error_message(status, body)
                else:
                    decoder = new_decoder(protocol.framing, limits.max_line_bytes)
                    received = 0
                    pieces = body_pieces(resp)
                    async for t, chunk in pieces:
                        tl.last_byte_ns = t
                        received += len(chunk)
                        if received > limits.max_stream_bytes:
                            outcome = Outcome.STREAM_ERROR
                            error = f"response body over {limits.max_stream_bytes} bytes: not read further"
                            tl.end_ns = t
                            break
                        for frame in decoder.feed(chunk):
                            ev = protocol.parse(frame, state)
                            if ev is None:
                                continue
                            if on_token is not None and ev.is_token:
                                on_token(t)
                            tl.on_event(ev, t)
                            if ev.terminal and tl.end_ns is None:
                                tl.end_ns = t
                            if ev.error and outcome is None:
                                outcome = Outcome.RATE_LIMITED if ev.rate_limited else Outcome.STREAM_ERROR
                                error = ev.error
                                tl.end_ns = t
                        if outcome is not None:
                            break
                    t_eof = time.perf_counter_ns()
                    if outcome is None:
                        for frame in decoder.close():
                            ev = protocol.parse(frame, state)
                            if ev is not None:
                                tl.on_event(ev, tl.last_byte_ns or t_eof)
                                if ev.terminal and tl.end_ns is None:
                                    tl.end_ns = tl.last_byte_ns or t_eof
                                if ev.error:
                                    outcome = Outcome.RATE_LIMITED if ev.rate_limited else Outcome.STREAM_ERROR
                                    error = ev.error
                    if tl.end_ns is None:
                        tl.end_ns = t_eof
                    if outcome is None and not tl.terminal:
                        outcome = Outcome.STREAM_ERROR
                        error = "stream ended without a terminal event (truncated)"
            finally:
                if pieces is not None:
                    await pieces.aclose()
                await resp.aclose()
                # httpx's response and its stream refer to each other: left as they are,
                # every probe's response, its stream layers and headers (and with them
                # the connection they reach) wait for a cyclic GC pass, ~40% of the
                # young collections' work at 1,000 targets, and whatever is in flight
                # when the daemon freezes the heap (daemon/gcpolicy.py) is never freed.
                resp.stream = _EMPTY
    except TimeoutError:
        outcome = Outcome.TIMEOUT
        tokens_before_error = tl.token_count
        if tl.headers_ns is None:
            error = f"no response headers within {target.timeout:g}s"
        elif not tokens_before_error:
            error = f"no token within {target.timeout:g}s (stalled after headers)"
        else:
            error = f"stream stalled: not finished within {target.timeout:g}s after {tokens_before_error} token chunks"
    except httpx.TimeoutException as exc:
        if isinstance(exc, httpx.ConnectTimeout):
            outcome, error = Outcome.CONNECT_ERROR, f"connect timeout after {target.connect_timeout:g}s"
        elif isinstance(exc, httpx.PoolTimeout):
            outcome, error = Outcome.TIMEOUT, "no free connection in the client pool"
        else:
            outcome = Outcome.TIMEOUT
            error = f"read timeout ({type(exc).__name__}) after {target.timeout:g}s"
    except httpx.ConnectError as exc:
        outcome, error = Outcome.CONNECT_ERROR, f"connect error: {_exc_text(exc)}"
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
        if tl.headers_ns is None:
            outcome, error = Outcome.CONNECT_ERROR, f"connection failed before response: {_exc_text(exc)}"
        else:
            outcome, error = Outcome.STREAM_ERROR, f"connection broken mid-stream: {_exc_text(exc)}"
    except (FramingError, StreamProtocolError) as exc:
        outcome, error = Outcome.STREAM_ERROR, str(exc)
    except httpx.HTTPError as exc:
        outcome, error = Outcome.STREAM_ERROR, f"{type(exc).__name__}: {_exc_text(exc)}"

    d = derive(tl, usage_bounds(target, request.body))
    text = tl.text
    if outcome is None:
        if tl.first_content_ns is None and (tl.finish_reason or "").lower() in expect.LENGTH_REASONS:
            outcome = Outcome.CONTENT_MISMATCH
            error = (
                f"finish_reason={tl.finish_reason} before any visible text: max_tokens "
                f"({target.probe.max_tokens}) was used up by reasoning"
            )
        elif tl.first_token_ns is None:
            outcome, error = Outcome.CONTENT_MISMATCH, "stream finished without any generated text"
        else:
            calls = tl.tools()
            # a call whose arguments are not JSON is a broken reply, expected or not
            mismatch = expect.check(target.probe.expect, text, d.output_tokens, calls) or \
                expect.tool_arguments(calls)
            outcome, error = (Outcome.CONTENT_MISMATCH, mismatch) if mismatch else (Outcome.OK, None)

    connect, tls = tl.phases()
    return ProbeResult(
        provider=target.provider.name,
        model=target.model,
        probe=target.probe.name,
        region=target.region,
        started_at=started_at,
        outcome=outcome,
        status_code=status,
        error=clip(error, _MAX_ERROR, secrets) if error else error,
        connect=connect,
        tls=tls,
        ttfb=d.ttfb,
        ttft=d.ttft,
        ttft_content=d.ttft_content,
        e2e=d.e2e,
        tpot=d.tpot,
        itl_mean=d.itl_mean,
        itl_p50=d.itl_p50,
        itl_p95=d.itl_p95,
        itl_max=d.itl_max,
        output_tokens=d.output_tokens,
        input_tokens=d.input_tokens,
        reasoning_tokens=d.reasoning_tokens,
        tokens_source=d.tokens_source,
        output_tps=d.output_tps,
        finish_reason=tl.finish_reason,
        itls=d.itls,
        token_chunks=tl.token_count,
        retry_after=retry_after,
        request_id=request_id,
        rate_limit=kept,
        server_timing=dict(tl.server_timing),
        text=redact(text, secrets) if text else "",
        usage_clamped=d.usage_clamped,
    )


def _tracer(tl: Timeline) -> Callable[[str, dict[str, Any]], Awaitable[None]]:
    async def trace(name: str, info: dict[str, Any]) -> None:
        t = time.perf_counter_ns()
        if name == "connection.connect_tcp.started":
            tl.connect_start_ns = t
        elif name == "connection.connect_tcp.complete":
            tl.connect_end_ns = t
        elif name == "connection.start_tls.started":
            tl.tls_start_ns = t
        elif name == "connection.start_tls.complete":
            tl.tls_end_ns = t
        # ttfb is not taken here: the socket read that completed the headers is earlier

    return trace


def _kept_headers(headers: httpx.Headers) -> dict[str, str]:
    return {
        k: v
        for k, v in headers.items()
        if k in _KEPT_HEADERS or k.startswith(_KEPT_HEADER_PREFIXES)
    }


def _retry_after(headers: httpx.Headers) -> float | None:
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    return retry_after_seconds(headers.get("retry-after") or None)


async def _read_capped(resp: httpx.Response) -> bytes:
    buf = bytearray()
    async for chunk in resp.aiter_raw():
        buf += chunk
        if len(buf) >= _MAX_ERROR_BODY:
            break
    return bytes(buf)


def _secrets_of(target: ProbeTarget) -> list[str]:
    """The target's own secrets (its key, its options' Secrets, the user:password of its
    URL) and every other one the process knows: an echo may carry any of them."""
    vals = [*url_secrets(target.provider.base_url), *SECRETS.values()]
    if target.provider.api_key:
        vals.append(target.provider.api_key.get())
    vals += [v.get() for v in target.provider.options.values() if isinstance(v, Secret) and v.get()]
    return vals


def _exc_text(exc: BaseException) -> str:
    msg = str(exc) or type(exc).__name__
    # not cut here: the whole result's error is redacted first, then cut (run_probe)
    return " ".join(msg.split())
