"""Letters: the mail templates of dashboard/mail/, rendered in the recipient's language with
the pages' catalogues, and put into a message with its headers.

A message is multipart/alternative: the plain text first, then the HTML with its inline
images beside it in a multipart/related (RFC 2387), each named by a Content-ID the HTML's
`cid:` URL points at. Every automated mail says so (Auto-Submitted, RFC 3834) and carries a
one-click unsubscribe (List-Unsubscribe with List-Unsubscribe-Post, RFC 8058) where there is
a subscription to end.
"""

from __future__ import annotations

import gettext
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from ..web.templates import dashboard_dir
from ..web.translations import LANGUAGES, load


def mail_dir() -> Path:
    return dashboard_dir() / "mail"


class Letters:
    """The mail templates, one Jinja2 environment per language (HTML escaped, text not)."""

    def __init__(self) -> None:
        root = dashboard_dir()
        self.translations: dict[str, gettext.NullTranslations] = load(root / "locale")
        loader = FileSystemLoader(root / "mail")
        self._environments = {lang: self._environment(loader, lang) for lang in LANGUAGES}

    def _environment(self, loader: FileSystemLoader, lang: str) -> Environment:
        environment = Environment(
            loader=loader,
            autoescape=select_autoescape(["html"], default_for_string=False, default=False),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            extensions=["jinja2.ext.i18n"],
        )
        environment.install_gettext_translations(  # type: ignore[attr-defined]
            self.translations[lang], newstyle=True
        )
        return environment

    def gettext(self, lang: str) -> Any:
        return self.translations[lang].gettext

    def render(self, lang: str, name: str, context: Mapping[str, Any]) -> str:
        return self._environments[lang].get_template(name).render({**context, "lang": lang})


def message(
    *,
    sender: str,
    to: str,
    subject: str,
    text: str,
    html: str,
    images: Mapping[str, tuple[str, bytes]],
    unsubscribe_url: str | None,
    public_url: str,
    now: Any,
    lang: str,
) -> EmailMessage:
    """The message: `images` maps a Content-ID (as the HTML's cid: names it) to a PNG's
    file name and bytes."""
    host = urlsplit(public_url).hostname or "localhost"
    mail = EmailMessage()
    mail["Subject"] = subject
    mail["From"] = sender
    mail["To"] = to
    mail["Date"] = format_datetime(now)
    mail["Message-ID"] = make_msgid("zeef", domain=host)
    mail["Auto-Submitted"] = "auto-generated"
    if unsubscribe_url is not None:
        mail["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    mail.set_content(text)
    mail.add_alternative(html, subtype="html")
    if images:
        html_part = mail.get_body(("html",))
        assert isinstance(html_part, EmailMessage)
        for cid, (filename, png) in images.items():
            html_part.add_related(
                png, maintype="image", subtype="png", cid=f"<{cid}>", disposition="inline",
                filename=filename,
            )  # fmt: skip
    # Last: add_alternative moves the Content-* headers set before it into the text part.
    mail["Content-Language"] = lang
    return mail


def content_id(name: str, public_url: str) -> str:
    """A Content-ID for an image, unique to this message (RFC 2392), without its <>."""
    host = urlsplit(public_url).hostname or "localhost"
    return make_msgid(name, domain=host)[1:-1]
