"""The operator's mail server: ZEEF_SMTP_URL read into a target, and messages sent to it with
aiosmtplib.

    smtp://user:pass@mail.example.com:587   STARTTLS, required (the default port is 587)
    smtps://user:pass@mail.example.com      TLS from the first byte (the default port is 465)
    smtp://localhost:25                     a relay on this machine: STARTTLS when offered

User and password are optional and percent-encoded as in any URL (`%40` for an @).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import aiosmtplib

# Seconds for each step of a conversation with the server: a stuck server must not hold the
# scheduler (and the Monday reports behind it) for ever.
TIMEOUT = 30.0


class MailError(RuntimeError):
    """The message was not accepted: the server refused it, or could not be reached."""


@dataclass(frozen=True)
class SMTPTarget:
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    # TLS from the start (smtps://).
    use_tls: bool = False
    # STARTTLS: True required, None when the server offers it (a relay on this machine).
    start_tls: bool | None = True


def parse_smtp_url(url: str) -> SMTPTarget:
    """The server a ZEEF_SMTP_URL names; ValueError says what is wrong with it."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not an smtp:// or smtps:// URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("smtp", "smtps"):
        raise ValueError("must start with smtp:// (STARTTLS) or smtps:// (TLS)")
    host = parts.hostname
    if not host:
        raise ValueError("names no host, e.g. smtp://user:pass@mail.example.com:587")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("takes no path or parameters: smtp://user:pass@host:port")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if password is not None and username is None:
        raise ValueError("has a password but no user name")
    if scheme == "smtps":
        return SMTPTarget(host, port or 465, username, password, use_tls=True, start_tls=False)
    # Credentials and reports never cross a network in the clear; on this machine a relay
    # without a certificate (a local Postfix) is common, and nothing leaves the host.
    start_tls = None if _loopback(host) else True
    return SMTPTarget(host, port or 587, username, password, start_tls=start_tls)


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Mailer:
    """Sends a message to the operator's mail server; one connection a message."""

    def __init__(self, url: str, sender: str) -> None:
        self.target = parse_smtp_url(url)
        self.sender = sender

    async def send(self, message: EmailMessage) -> None:
        """Deliver `message` (To: set) to the server, or raise MailError."""
        target = self.target
        if message["From"] is None:
            message["From"] = self.sender
        try:
            refused, _reply = await aiosmtplib.send(
                message,
                hostname=target.host,
                port=target.port,
                username=target.username,
                password=target.password,
                use_tls=target.use_tls,
                start_tls=target.start_tls,
                timeout=TIMEOUT,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise MailError(f"{target.host}:{target.port}: {exc}") from None
        if refused:
            raise MailError(f"{target.host}:{target.port} refused {', '.join(refused)}")


def sender(public_url: str, mail_from: str | None) -> str:
    """ZEEF_MAIL_FROM, or Zeef at the host people reach this server by."""
    if mail_from:
        return mail_from
    host = urlsplit(public_url).hostname or "localhost"
    return f"Zeef <zeef@{host}>"
