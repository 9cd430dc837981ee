"""Secrets out of every text we keep or show: error messages, reply text, log lines.

A secret is registered once (where it is read: a key file, an environment variable, the
`user:password@` of a URL) and then replaced by `***` wherever it appears. Text is
redacted before it is cut to length, and a text that ends in the first characters of a
secret (cut mid-secret by someone who truncated first) loses that tail too.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"
MIN_SECRET = 4  # shorter values would mask ordinary words; no real credential is this short
MIN_TAIL = 3  # a cut-off secret leaves at least this many of its characters before it is masked


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of each secret, and a trailing partial one, masked."""
    for s in sorted((s for s in secrets if len(s) >= MIN_SECRET), key=len, reverse=True):
        if s in text:
            text = text.replace(s, MASK)
        # the end of the text is the start of the secret: someone cut it short
        if len(text) < MIN_TAIL or text[-MIN_TAIL:] not in s:
            continue
        for k in range(min(len(s) - 1, len(text)), MIN_TAIL - 1, -1):
            if text.endswith(s[:k]):
                text = text[:-k] + MASK
                break
    return text


def clip(text: str, limit: int, secrets: Iterable[str]) -> str:
    """Redact, then cut to `limit` characters (cutting first would leak a secret's prefix)."""
    return redact(text, secrets)[:limit]


def url_secrets(url: str) -> list[str]:
    """The credentials a URL carries (`https://user:password@host/`) in every form they
    travel or echo in: as written, percent-decoded, and as the Basic auth credential
    httpx derives from them."""
    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:
        return []
    if user is None and password is None:
        return []
    out: set[str] = set()
    netloc = parts.netloc.rpartition("@")[0]
    out.add(netloc)
    if password:
        out.update({password, unquote(password)})
    plain = f"{unquote(user or '')}:{unquote(password or '')}"
    out.add(plain)
    out.add(base64.b64encode(plain.encode()).decode())
    return [s for s in out if len(s) >= MIN_SECRET]


def strip_userinfo(url: str) -> str:
    """The URL as shown: without its user:password."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=f"{MASK}@{parts.netloc.rpartition('@')[2]}"))


class Registry:
    """The process's known secrets, for text that has no target at hand (log lines, sink
    and notifier errors)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: frozenset[str] = frozenset()

    def add(self, *values: str) -> None:
        new = {v for v in values if v and len(v) >= MIN_SECRET}
        if new - self._secrets:
            with self._lock:
                self._secrets = self._secrets | new

    def add_url(self, url: str) -> None:
        self.add(*url_secrets(url))

    def redact(self, text: str) -> str:
        secrets = self._secrets
        return redact(text, secrets) if secrets else text

    def clip(self, text: str, limit: int) -> str:
        return self.redact(text)[:limit]

    def values(self) -> frozenset[str]:
        return self._secrets

    def __contains__(self, value: str) -> bool:
        return value in self._secrets


SECRETS = Registry()
