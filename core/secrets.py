"""Secrets: a value that never prints itself, read from an environment variable or a file
(never from the config), and registered with the redactor so no log line can carry it."""

from __future__ import annotations

import os

from core.redact import SECRETS

MAX_SECRET_FILE = 4096  # bytes; API keys, tokens and PEM-less passwords are far smaller


class Secret:
    """A secret value that never prints itself (repr/str/format are masked)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


class MissingSecret(ValueError):
    pass


def read_secret(env: str | None, file: str | None, what: str) -> Secret | None:
    """A secret from an environment variable or a file; never from the config itself."""
    if env:
        value = os.environ.get(env)
        if value is None or value == "":
            raise MissingSecret(f"{what}: environment variable {env} is not set")
        SECRETS.add(value.strip())
        return Secret(value.strip())
    if file:
        try:
            with open(file, "rb") as f:
                raw = f.read(MAX_SECRET_FILE + 1)  # /dev/zero or a log file by mistake: never unbounded
        except OSError as exc:
            raise MissingSecret(f"{what}: cannot read secret file {file}: {exc.strerror}") from None
        if len(raw) > MAX_SECRET_FILE:
            raise MissingSecret(f"{what}: secret file {file} is larger than {MAX_SECRET_FILE} bytes (not a secret?)")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MissingSecret(f"{what}: secret file {file} is not UTF-8 text (byte {exc.start})") from None
        SECRETS.add(text.strip())
        return Secret(text.strip())
    return None
