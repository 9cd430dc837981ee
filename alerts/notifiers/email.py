"""Email through SMTP (aiosmtplib): STARTTLS or implicit TLS, auth, plain + HTML parts."""

from __future__ import annotations

import html
import ssl
from email.message import EmailMessage

from pydantic import Field

from alerts.model import Notification
from alerts.notifiers.base import DeliveryError, Notifier, ReceiverConfig
from core.durations import Duration
from core.redact import SECRETS
from core.secrets import read_secret


class EmailReceiver(ReceiverConfig):
    secrets = ("password", "username")

    host: str
    port: int = 587
    starttls: bool = True
    tls: bool = False  # implicit TLS (port 465)
    username_env: str | None = None
    username_file: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    from_: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    timeout: Duration = 15
    ca_file: str | None = None  # trust this CA (self-signed relays)


class EmailNotifier(Notifier):
    kind = "email"
    config = EmailReceiver

    def validate(self) -> None:
        self._creds()

    def _creds(self) -> tuple[str | None, str | None]:
        c = self.cfg
        user = read_secret(c.username_env, c.username_file, f"receivers.{self.name}.email.username")
        pw = read_secret(c.password_env, c.password_file, f"receivers.{self.name}.email.password")
        return (user.get() if user else None), (pw.get() if pw else None)

    def message(self, n: Notification) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = n.title()
        msg["From"] = self.cfg.from_
        msg["To"] = ", ".join(self.cfg.to)
        msg["X-LLM-Vitals-Group"] = n.thread_key or "test"
        msg.set_content(n.text() + "\n\n— llm-vitals\n")
        items = "".join(f"<li>{html.escape(line)}</li>" for line in (n.lines() or [n.text()]))
        msg.add_alternative(f"<html><body><h3>{html.escape(n.title())}</h3><ul>{items}</ul>"
                            "<p style='color:#888'>llm-vitals</p></body></html>", subtype="html")
        return msg

    async def send(self, n: Notification) -> None:
        import aiosmtplib  # here, not at the top: loading the config (which reads this module) stays light

        c = self.cfg
        user, pw = self._creds()
        context = ssl.create_default_context(cafile=c.ca_file) if c.ca_file else None
        try:
            await aiosmtplib.send(
                self.message(n), hostname=c.host, port=c.port, username=user, password=pw,
                use_tls=c.tls, start_tls=c.starttls and not c.tls, timeout=c.timeout, tls_context=context,
            )
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"SMTP authentication failed ({exc.code})", permanent=True) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"SMTP: {type(exc).__name__}: {SECRETS.clip(str(exc), 150)}") from None
