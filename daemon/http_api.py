"""HTTP endpoints: /metrics /healthz /readyz /api/v1/status, /api/v1/history (+ alert routes) and
the status page (/, /target/PROVIDER/MODEL/PROBE, /compare; daemon/statuspage.py).

Binds loopback by default. When a bearer token is configured (required off loopback),
everything but the health endpoints (and /metrics unless metrics_require_auth) needs it.

Without a token, a browser on the same machine is the threat: any page can send "simple"
cross-site requests (text/plain or form bodies need no CORS preflight), and a DNS-rebound
name reaches 127.0.0.1 with its own Host. So (daemon/request_guard.py) a request must name
this server in Host, a write must carry `Content-Type: application/json` (which a foreign
page cannot send without a preflight this API never grants), and an Origin, when given,
must be this server's.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE

from daemon import status as daemon_status
from daemon.exposition import render_body
from daemon.request_guard import RequestGuard
from daemon.statuspage import StatusPage

if TYPE_CHECKING:
    from daemon.process import Daemon

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_OPEN = frozenset({"/healthz", "/readyz"})


def _wants_openmetrics(accept: str) -> bool:
    """Content negotiation as prometheus_client's own handler does it (Prometheus asks for
    OpenMetrics first)."""
    return choose_encoder(accept)[1].startswith("application/openmetrics-text")


def _json(status: int, body: Any) -> web.Response:
    # strict JSON: a NaN (a detector series still warming up has no recent median) or an
    # infinity is null, since browsers' JSON.parse and most clients reject the bare words
    text = json.dumps(_finite(body), default=str, allow_nan=False)
    return web.Response(status=status, text=text, content_type="application/json")


def _finite(v: Any) -> Any:
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_finite(x) for x in v]
    return v


def build_app(daemon: Daemon) -> web.Application:
    guard = RequestGuard(daemon.settings.http)

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        token = daemon.auth_token
        path = request.path
        if path not in _OPEN:
            refused = guard.refuse(request.method, request.headers)
            if refused is not None:
                status, reason = refused
                return _json(status, {"error": reason})
        needs = token is not None and path not in _OPEN and not (
            path == "/metrics" and not daemon.settings.http.metrics_require_auth
        )
        if needs:
            given = request.headers.get("Authorization", "")
            expected = f"Bearer {token}"
            if not hmac.compare_digest(given.encode(), expected.encode()):
                return _json(401, {"error": "missing or invalid bearer token"})
        return await handler(request)

    app = web.Application(middlewares=[auth])
    render_lock = asyncio.Lock()

    async def metrics(request: web.Request) -> web.Response:
        daemon.refresh_gauges()
        openmetrics = _wants_openmetrics(request.headers.get("Accept", ""))
        gzipped = "gzip" in request.headers.get("Accept-Encoding", "").lower()

        # Rendering 1,000 targets is ~0.1 s of CPU: in one piece it would stall every
        # probe for that long, and in a worker thread it still did (daemon/exposition.py).
        # It runs on the loop in slices. One render at a time.
        async with render_lock:
            body = await render_body(daemon.metrics.registry, openmetrics, gzipped)
        headers = {"Content-Type": OPENMETRICS_CONTENT_TYPE if openmetrics else CONTENT_TYPE_LATEST}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)

    async def healthz(_: web.Request) -> web.Response:
        ok, detail = daemon_status.health(daemon)
        return _json(200 if ok else 503, {"status": "ok" if ok else "unhealthy", **detail})

    async def readyz(_: web.Request) -> web.Response:
        ok, detail = daemon_status.readiness(daemon)
        return _json(200 if ok else 503, {"status": "ready" if ok else "not ready", **detail})

    page = StatusPage(daemon)

    async def status(_: web.Request) -> web.Response:
        return _json(200, await page.status())

    async def history(request: web.Request) -> web.Response:
        code, body = await page.history(request.query)
        return _json(code, body)

    async def sweeps(request: web.Request) -> web.Response:
        code, body = await page.sweeps(request.query)
        return _json(code, body)

    async def sweep_run(request: web.Request) -> web.Response:
        """Run a scheduled sweep now (after a deploy, say): queued like a cron run, one sweep
        at a time, within the same budgets; recorded like the scheduled runs."""
        name = request.match_info["name"]
        got = daemon.sweeps.request(name)
        if got == "unknown":
            return _json(404, {"error": f"no scheduled sweep named {name!r}"})
        if got == "skipped_overlap":
            return _json(409, {"error": f"sweep {name!r} is already running or waiting", "state": got})
        return _json(202, {"state": got})

    def _html(text: str, code: int = 200) -> web.Response:
        return web.Response(status=code, text=text, content_type="text/html",
                            headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})

    async def index(_: web.Request) -> web.Response:
        return _html(page.html("overview"))

    async def compare(_: web.Request) -> web.Response:
        return _html(page.html("compare"))

    async def target_page(request: web.Request) -> web.Response:
        key = request.match_info["key"]
        if key not in daemon.target_keys():
            return _html(page.html("unknown", key), 404)
        return _html(page.html("target", key))

    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/api/v1/status", status)
    app.router.add_get("/api/v1/history", history)
    app.router.add_get("/api/v1/sweeps", sweeps)
    app.router.add_post("/api/v1/sweeps/{name}/run", sweep_run)
    app.router.add_get("/", index)
    app.router.add_get("/compare", compare)
    app.router.add_get("/target/{key:.+}", target_page)
    _alert_routes(app, daemon)
    return app


def _alert_routes(app: web.Application, daemon: Daemon) -> None:
    try:
        from alerts import http_routes
    except ImportError:
        return

    def engine_or_503() -> Any:
        return daemon.alerts

    async def alerts_get(_: web.Request) -> web.Response:
        if daemon.alerts is None:
            return _json(200, {"alerts": []})
        status, body = http_routes.alerts_get(engine_or_503())
        return _json(status, body)

    async def silences_get(_: web.Request) -> web.Response:
        if daemon.alerts is None:
            return _json(503, {"error": "alerting is disabled"})
        status, body = http_routes.silences_get(engine_or_503())
        return _json(status, body)

    async def silences_post(request: web.Request) -> web.Response:
        if daemon.alerts is None:
            return _json(503, {"error": "alerting is disabled"})
        try:
            body = await request.json()
        except ValueError:
            return _json(400, {"error": "body must be JSON"})
        status, out = http_routes.silences_post(engine_or_503(), body)
        return _json(status, out)

    async def silence_delete(request: web.Request) -> web.Response:
        if daemon.alerts is None:
            return _json(503, {"error": "alerting is disabled"})
        status, out = http_routes.silence_delete(engine_or_503(), request.match_info["id"])
        return _json(status, out)

    async def alert_test(request: web.Request) -> web.Response:
        if daemon.alerts is None:
            return _json(503, {"error": "alerting is disabled"})
        code, body = await http_routes.alert_test(engine_or_503(), request.match_info["receiver"])
        return _json(code, body)

    app.router.add_get("/api/v1/alerts", alerts_get)
    app.router.add_get("/api/v1/silences", silences_get)
    app.router.add_post("/api/v1/silences", silences_post)
    app.router.add_delete("/api/v1/silences/{id}", silence_delete)
    app.router.add_post("/api/v1/alert-test/{receiver}", alert_test)
