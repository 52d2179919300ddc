"""Sources and channels: referrers grouped by the maintained list, as Plausible groups them."""

from __future__ import annotations

import pytest

from server.reports.sources import channel, source


@pytest.mark.parametrize(
    ("host", "utm", "expected"),
    [
        ("www.google.com", None, "Google"),
        ("www.google.co.uk", None, "Google"),
        ("bing.com", None, "Bing"),
        ("duckduckgo.com", None, "DuckDuckGo"),
        ("l.facebook.com", None, "Facebook"),
        ("lnkd.in", None, "LinkedIn"),
        ("t.co", None, "Twitter"),
        ("x.com", None, "Twitter"),
        ("mail.google.com", None, "Gmail"),
        ("www.someblog.example", None, "someblog.example"),
        (None, "newsletter", "newsletter"),  # kept as tagged, as Plausible does
        (None, "fb", "Facebook"),
        (None, "GOOGLE", "Google"),  # a list name in any case
        ("www.google.com", "spring-mailing", "spring-mailing"),  # the tag wins over the referrer
        ("chatgpt.com", None, "ChatGPT"),
        (None, None, None),
    ],
    ids=lambda v: str(v),
)
def test_source(host: str | None, utm: str | None, expected: str | None) -> None:
    assert source(host, utm) == expected


@pytest.mark.parametrize(
    ("host", "utm_source", "utm_medium", "expected"),
    [
        (None, None, None, "Direct"),
        ("www.google.com", None, None, "Organic Search"),
        ("www.google.com", "google", "cpc", "Paid Search"),
        ("l.facebook.com", None, None, "Organic Social"),
        ("l.facebook.com", "fb", "paid_social", "Paid Social"),
        (None, "newsletter", "email", "Email"),
        (None, "newsletter", "spring-newsletter-mail", "Email"),
        ("chatgpt.com", None, None, "AI Assistants"),
        (None, "bing", "paid", "Paid Search"),
        ("mail.google.com", None, None, "Email"),
        ("www.someblog.example", None, None, "Referral"),
        (None, "partner", "affiliate", "Affiliates"),
        (None, "ads", "display", "Display"),
        ("www.youtube.com", None, None, "Organic Video"),
        (None, "whatever", None, "Referral"),  # tagged, so it has a source
    ],
    ids=lambda v: str(v),
)
def test_channel(
    host: str | None, utm_source: str | None, utm_medium: str | None, expected: str
) -> None:
    assert channel(host, utm_source, utm_medium, None) == expected
