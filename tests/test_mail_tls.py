"""The mailer against a real SMTP server that speaks TLS (aiosmtpd with a certificate made for
the test): STARTTLS taken when offered, the login only inside TLS, and smtps:// from the first
byte; a certificate the machine does not trust is refused, never skipped."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from server.mail.smtp import Mailer, MailError

from .live import _free_port
from .test_mail_reports import Inbox
from .test_tls import self_signed

USER, PASSWORD = "zeef@stats.example.org", "p@ss:word/with%signs"


class Logins:
    """aiosmtpd's authenticator: one account, and every attempt with whether it was in TLS."""

    def __init__(self) -> None:
        self.attempts: list[tuple[str, bool]] = []

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, auth: Any) -> Any:
        assert isinstance(auth, LoginPassword)
        self.attempts.append((auth.login.decode(), session.ssl is not None))
        ok = auth.login.decode() == USER and auth.password.decode() == PASSWORD
        return AuthResult(success=ok)


@pytest.fixture
def certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    certfile, keyfile = self_signed(tmp_path)
    # The machine's trust store, as an operator's would hold their mail server's CA.
    monkeypatch.setenv("SSL_CERT_FILE", str(certfile))
    return certfile, keyfile


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


@pytest.fixture
def starttls(certificate: tuple[Path, Path]) -> Iterator[tuple[Inbox, Logins, int]]:
    inbox, logins, port = Inbox(), Logins(), _free_port("127.0.0.1")
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, tls_context=server_context(certificate),
        require_starttls=True, authenticator=logins, auth_require_tls=True,
    )  # fmt: skip
    controller.start()
    try:
        yield inbox, logins, port
    finally:
        controller.stop()


def message() -> EmailMessage:
    mail = EmailMessage()
    mail["To"] = "ann@example.com"
    mail["Subject"] = "test"
    mail.set_content("hello")
    return mail


def url(scheme: str, port: int) -> str:
    return f"{scheme}://zeef%40stats.example.org:p%40ss%3Aword%2Fwith%25signs@localhost:{port}"


async def test_starttls_then_the_login(starttls: tuple[Inbox, Logins, int]) -> None:
    inbox, logins, port = starttls
    await Mailer(url("smtp", port), "Zeef <zeef@stats.example.org>").send(message())
    assert [m["To"] for m in inbox.messages] == ["ann@example.com"]
    # Logged in once, inside TLS, with the percent-decoded password.
    assert logins.attempts == [(USER, True)]


async def test_an_untrusted_certificate_is_refused(
    starttls: tuple[Inbox, Logins, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox, logins, port = starttls
    other, _key = self_signed(tmp_path, "other")
    monkeypatch.setenv("SSL_CERT_FILE", str(other))
    with pytest.raises(MailError):
        await Mailer(url("smtp", port), "zeef@stats.example.org").send(message())
    assert inbox.messages == [] and logins.attempts == []


async def test_smtps_speaks_tls_from_the_first_byte(certificate: tuple[Path, Path]) -> None:
    inbox, logins, port = Inbox(), Logins(), _free_port("127.0.0.1")
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, ssl_context=server_context(certificate),
        # aiosmtpd tells no TLS from the first byte from none (its `session.ssl` is for
        # STARTTLS): the socket itself is TLS here, or nothing would have been said at all.
        authenticator=logins, auth_require_tls=False,
    )  # fmt: skip
    controller.start()
    try:
        await Mailer(url("smtps", port), "zeef@stats.example.org").send(message())
    finally:
        controller.stop()
    assert len(inbox.messages) == 1 and [user for user, _tls in logins.attempts] == [USER]
