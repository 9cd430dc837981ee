"""Which requests the HTTP API refuses before routing: a foreign Host (DNS rebinding), a
foreign Origin, and writes that are not JSON (cross-site "simple" requests)."""

from __future__ import annotations

from collections.abc import Mapping

from daemon.config import HttpConfig

_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _split_host(value: str) -> tuple[str, int | None] | None:
    """'Example.org:80' → ('example.org', 80); '[::1]:9464' → ('::1', 9464); None if malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        name, sep, rest = value[1:].partition("]")
        if not sep:
            return None
        port = rest.removeprefix(":") if rest.startswith(":") else (None if not rest else "bad")
    else:
        name, sep, port_text = value.rpartition(":")
        if not sep or ":" in name:  # no port, or a bare IPv6 address without brackets
            name, port = value, None
        else:
            port = port_text
    if port is None:
        return (name, None) if name else None
    if not port.isdigit():
        return None
    return name, int(port)


class RequestGuard:
    def __init__(self, http: HttpConfig) -> None:
        self.port = http.port
        self.names = {n.lower().strip("[]") for n in (*_LOOPBACK_NAMES, http.host, *http.allowed_hosts)}
        # Off loopback, without allowed_hosts, the names the API is reached by are not
        # known (a service name, a pod IP); a token is required there anyway (config).
        self.check_host = http.is_loopback or bool(http.allowed_hosts)

    def _ours(self, host: str | None) -> bool:
        if host is None:
            return False
        split = _split_host(host)
        if split is None:
            return False
        name, port = split
        return name in self.names and (port or 80) == self.port

    def refuse(self, method: str, headers: Mapping[str, str]) -> tuple[int, str] | None:
        """(status, reason) when the request must be refused; None when it may go on."""
        if self.check_host and not self._ours(headers.get("Host")):
            return 421, "unknown Host: this API answers to its listen address (see http.allowed_hosts)"
        origin = headers.get("Origin")
        if origin is not None and self.check_host:
            scheme, sep, rest = origin.partition("://")
            if not sep or scheme not in ("http", "https") or not self._ours(rest.rstrip("/")):
                return 403, "cross-origin request refused"
        if method in _WRITES and method != "DELETE":
            ctype = headers.get("Content-Type", "").split(";")[0].strip().lower()
            if ctype != "application/json":
                return 415, "writes need Content-Type: application/json"
        return None
