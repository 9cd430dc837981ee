"""Cross-site requests on the default loopback setup without a token (issue 13, item 9):
real HTTP requests to the daemon with foreign Host/Origin headers and non-JSON bodies."""

from __future__ import annotations

import httpx

from daemon.config import HttpConfig
from daemon.request_guard import RequestGuard
from tests.daemon.factories import CONFIG

GUARDED = CONFIG.replace("alerts: {enabled: false}", "alerts: {enabled: true}").replace(
    'http: {listen: "127.0.0.1:{port}"}', 'http: {listen: "127.0.0.1:{port}", allowed_hosts: [vitals.internal]}')
SILENCE = '{"match": {"provider": "sim-openai"}, "duration": "30d"}'


def test_cross_site_writes_and_foreign_hosts_are_refused(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(GUARDED)
    d.wait_ready()
    url, port = d.url, d.port
    with httpx.Client(timeout=5) as c:
        # what a foreign page can send without a preflight: text/plain, a form, no type
        for ctype, body in (("text/plain", SILENCE), ("application/x-www-form-urlencoded", "match=x"),
                            ("multipart/form-data; boundary=b", "--b--"), (None, SILENCE)):
            headers = {"Origin": "http://evil.example"} if ctype == "text/plain" else {}
            if ctype:
                headers["Content-Type"] = ctype
            r = c.post(url + "/api/v1/silences", content=body, headers=headers)
            assert r.status_code in (403, 415), (ctype, r.status_code, r.text)
        r = c.post(url + "/api/v1/silences", content=SILENCE, headers={"Content-Type": "text/plain"})
        assert r.status_code == 415 and "application/json" in r.json()["error"]
        r = c.post(url + "/api/v1/alert-test/nobody", content="", headers={"Content-Type": "text/plain"})
        assert r.status_code == 415
        # JSON from a foreign origin (it would need a preflight, but say it got through)
        for origin in ("http://evil.example", f"http://evil.example:{port}", "null", f"http://localhost:{port + 1}"):
            r = c.post(url + "/api/v1/silences", content=SILENCE,
                       headers={"Content-Type": "application/json", "Origin": origin})
            assert r.status_code == 403, (origin, r.text)
        # DNS rebinding: the attacker's name resolves to 127.0.0.1, the Host header stays theirs
        for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1:{port + 1}", "localhost", "[::2]:1"):
            for path in ("/api/v1/status", "/", "/metrics", "/api/v1/silences"):
                r = c.get(url + path, headers={"Host": host})
                assert r.status_code == 421, (host, path, r.status_code)
        assert c.get(url + "/healthz", headers={"Host": "evil.example"}).status_code == 200  # health stays open
        assert c.get(url + "/api/v1/silences").json() == {"silences": []}  # nothing got through
        # our own names, ports and origins work
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}", f"vitals.internal:{port}"):
            assert c.get(url + "/api/v1/status", headers={"Host": host}).status_code == 200, host
        r = c.post(url + "/api/v1/silences", content=SILENCE,
                   headers={"Content-Type": "application/json; charset=utf-8", "Origin": f"http://localhost:{port}"})
        assert r.status_code == 201, r.text
        assert len(c.get(url + "/api/v1/silences").json()["silences"]) == 1
        assert c.delete(url + f"/api/v1/silences/{r.json()['id']}").status_code == 200
    assert d.stop() == 0


def test_host_names_and_ports() -> None:
    g = RequestGuard(HttpConfig(listen="[::1]:9464"))
    assert g.refuse("GET", {"Host": "[::1]:9464"}) is None
    assert g.refuse("GET", {"Host": "localhost:9464"}) is None
    assert g.refuse("GET", {"Host": "[::1]"}) is not None  # port 80 is not ours
    assert g.refuse("GET", {"Host": "::1:9464"}) is not None  # malformed
    assert g.refuse("GET", {}) is not None
    assert RequestGuard(HttpConfig(listen="127.0.0.1:80")).refuse("GET", {"Host": "localhost"}) is None
    # off loopback (a token is required there) the names are unknown: Host is not checked
    off = RequestGuard(HttpConfig(listen="0.0.0.0:9464", auth_token_env="X"))
    assert off.refuse("GET", {"Host": "vitals.svc.cluster.local:9464"}) is None
    assert off.refuse("POST", {"Host": "x", "Content-Type": "text/plain"}) is not None


def test_api_json_is_strict_where_a_value_is_not_finite() -> None:
    from daemon.http_api import _json
    from tests.daemon.factories import strict_json

    body = _json(200, {"baseline": float("nan"), "recent": [1.5, float("inf")], "n": 3}).text
    assert body is not None and strict_json(body) == {"baseline": None, "recent": [1.5, None], "n": 3}
