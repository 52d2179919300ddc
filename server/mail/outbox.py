"""The outbox: writes a report or an alert for one recipient, sends it and records it in the
audit log. The scheduler (what is due) and `zeef report send` (now, by hand) both post here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage

from ..accounts import audit
from ..events import Site
from ..storage import Storage
from . import alerts, report, unsubscribe
from .letters import Letters, message
from .periods import Period
from .smtp import Mailer


@dataclass(frozen=True)
class Recipient:
    email: str
    language: str
    # What its unsubscribe link ends; None: no link (a report sent by hand to an address
    # that has no subscription has nothing to end).
    unsubscribe: unsubscribe.Target | None = None
    share_id: int | None = None


class Outbox:
    def __init__(
        self,
        storage: Storage,
        mailer: Mailer,
        public_url: str,
        clock: Callable[[], datetime],
        letters: Letters | None = None,
    ) -> None:
        self.storage, self.mailer, self.public_url, self.clock = storage, mailer, public_url, clock
        self.letters = letters or Letters()
        # Set at start from the stored secret key (server/keys.py), as the sessions' is.
        self.secret = ""

    def unsubscribe_url(self, recipient: Recipient) -> str | None:
        if recipient.unsubscribe is None:
            return None
        return unsubscribe.url(self.public_url, self.secret, recipient.unsubscribe)

    async def report(
        self, site: Site, period: Period, recipient: Recipient, actor: audit.Actor
    ) -> EmailMessage:
        """Write and send one report; MailError when the server does not take it."""
        found = await report.figures(self.storage, site, period)
        links = report.Links(
            self.public_url,
            share=await report.share_link(
                self.storage,
                recipient.share_id,
                self.public_url,
                self.secret,
                site,
                self.clock().timestamp(),
            ),
            unsubscribe=self.unsubscribe_url(recipient),
        )
        letter = report.compose(self.letters, found, recipient.language, links)
        mail = self.write(recipient, letter.subject, letter.text, letter.html, letter.images,
                          links.unsubscribe)  # fmt: skip
        await self.mailer.send(mail)
        await audit.record(self.storage, actor, "report sent",
                           f"{site.domain}: {period.kind} {period.key} to {recipient.email}",
                           site.customer_id)  # fmt: skip
        return mail

    async def alert(
        self, alert: alerts.Alert, recipient: Recipient, actor: audit.Actor
    ) -> EmailMessage:
        """Write and send one alert; MailError when the server does not take it."""
        links = report.Links(self.public_url, unsubscribe=self.unsubscribe_url(recipient))
        letter = alerts.compose(self.letters, alert, recipient.language, links)
        mail = self.write(recipient, letter.subject, letter.text, letter.html, letter.images,
                          links.unsubscribe)  # fmt: skip
        await self.mailer.send(mail)
        site = alert.site
        await audit.record(self.storage, actor, "alert sent",
                           f"{site.domain}: {alert.kind} to {recipient.email}",
                           site.customer_id)  # fmt: skip
        return mail

    def write(
        self,
        recipient: Recipient,
        subject: str,
        text: str,
        html: str,
        images: dict[str, tuple[str, bytes]],
        unsubscribe_url: str | None,
    ) -> EmailMessage:
        return message(
            sender=self.mailer.sender, to=recipient.email, subject=subject, text=text,
            html=html, images=images, unsubscribe_url=unsubscribe_url,
            public_url=self.public_url, now=self.clock(), lang=recipient.language,
        )  # fmt: skip
