"""Where a visit came from: its referrer grouped into a named source, and its channel.

Sources come from Snowplow's referrer list (the referer-parser package's data file, which is
what Plausible's sources are built on), so "Google" is every Google search domain, not a list
we keep. Channels follow Plausible's grouping, itself modelled on Google Analytics' default
channel groups.
"""

from __future__ import annotations

import json
from functools import cache, lru_cache
from importlib import resources

# Hosts that appeared after the list's last release (2016). Few, and only names a site owner
# would otherwise see split across hosts.
NEWER = {
    "x.com": ("Twitter", "social"),
    "youtube.com": ("YouTube", "social"),
    "m.youtube.com": ("YouTube", "social"),
    "chatgpt.com": ("ChatGPT", "unknown"),
    "chat.openai.com": ("ChatGPT", "unknown"),
    "perplexity.ai": ("Perplexity", "unknown"),
    "bsky.app": ("Bluesky", "social"),
    "threads.net": ("Threads", "social"),
    "mastodon.social": ("Mastodon", "social"),
    "news.ycombinator.com": ("Hacker News", "social"),
    "github.com": ("GitHub", "unknown"),
}
# utm_source values people use for a named source.
UTM_NAMES = {
    "fb": "Facebook", "facebook": "Facebook", "ig": "Instagram", "instagram": "Instagram",
    "google": "Google", "bing": "Bing", "duckduckgo": "DuckDuckGo", "twitter": "Twitter",
    "x": "Twitter", "linkedin": "LinkedIn", "reddit": "Reddit", "youtube": "YouTube",
    "newsletter": "Newsletter", "tiktok": "TikTok",
}  # fmt: skip
SEARCH_MEDIUMS = {"search", "organic"}
PAID = ("cpc", "ppc", "paid", "retargeting", "cpm", "cpv", "cpa")
SHOPPING = ("shopping", "shop")
VIDEO = ("video",)
VIDEO_SOURCES = {"YouTube", "Vimeo", "TikTok", "Twitch", "Dailymotion"}
SHOPPING_SOURCES = {"Amazon", "eBay", "Shopify", "Etsy", "Walmart"}


@cache
def _hosts() -> dict[str, tuple[str, str]]:
    """host -> (source name, medium: search, social, email or unknown)."""
    text = resources.files("referer_parser").joinpath("data/referers.json").read_text("utf-8")
    hosts: dict[str, tuple[str, str]] = {}
    for medium, names in json.loads(text).items():
        for name, entry in names.items():
            for host in entry.get("domains", []):
                # The list names Google's other services as "unknown": keep search first.
                hosts.setdefault(host.lower(), (name, medium))
    hosts.update(NEWER)
    return hosts


@lru_cache(maxsize=16384)
def lookup(host: str | None) -> tuple[str, str] | None:
    """(name, medium) of a referrer host, trying it and then each parent domain."""
    if not host:
        return None
    host = host.lower().rstrip(".")
    hosts = _hosts()
    parts = host.split(".")
    for i in range(len(parts) - 1):
        found = hosts.get(".".join(parts[i:]))
        if found:
            return found
    return None


@lru_cache(maxsize=16384)
def source(referrer_host: str | None, utm_source: str | None) -> str | None:
    """A visit's source: the named source of its referrer, else the referrer's host, else
    its utm_source; None when it came directly."""
    if referrer_host:
        found = lookup(referrer_host)
        if found:
            return found[0]
        return referrer_host.lower().removeprefix("www.")
    if utm_source:
        return UTM_NAMES.get(utm_source.lower(), utm_source)
    return None


@lru_cache(maxsize=16384)
def channel(
    referrer_host: str | None,
    utm_source: str | None,
    utm_medium: str | None,
    utm_campaign: str | None,
) -> str:
    """The acquisition channel, by the rules of Google Analytics' default channel groups as
    Plausible applies them: campaign parameters first, then the kind of referrer."""
    medium = (utm_medium or "").lower()
    campaign = (utm_campaign or "").lower()
    found = lookup(referrer_host)
    name = source(referrer_host, utm_source)
    kind = found[1] if found else None
    utm = (utm_source or "").lower()
    social = kind == "social" or UTM_NAMES.get(utm) in {"Facebook", "Instagram", "Twitter",
                                                        "LinkedIn", "Reddit", "TikTok"}  # fmt: skip
    search = kind == "search" or UTM_NAMES.get(utm) in {"Google", "Bing", "DuckDuckGo"}
    paid = medium.startswith(PAID) or any(medium.endswith(p) for p in PAID) or "paid" in medium
    if medium in ("cross-network",) or "cross-network" in campaign:
        return "Cross-network"
    if name in SHOPPING_SOURCES or "shop" in campaign:
        return "Paid Shopping" if paid else "Organic Shopping"
    if paid and search:
        return "Paid Search"
    if paid and social:
        return "Paid Social"
    if paid and name in VIDEO_SOURCES:
        return "Paid Video"
    if medium in ("display", "banner", "expandable", "interstitial", "cpm"):
        return "Display"
    if paid:
        return "Paid Other"
    if search or medium in SEARCH_MEDIUMS:
        return "Organic Search"
    if name in VIDEO_SOURCES or "video" in medium:
        return "Organic Video"
    if social or medium in ("social", "social-network", "social-media", "sm", "social network"):
        return "Organic Social"
    if kind == "email" or medium in ("email", "e-mail", "e_mail", "e mail") or utm in (
        "email", "e-mail", "newsletter"):  # fmt: skip
        return "Email"
    if medium == "affiliate":
        return "Affiliates"
    if medium == "audio":
        return "Audio"
    if medium == "sms" or utm == "sms":
        return "SMS"
    if medium.endswith("push") or "mobile" in medium or "notification" in medium:
        return "Mobile Push Notifications"
    if medium in ("referral", "app", "link") or referrer_host:
        return "Referral"
    if utm_source or utm_medium or utm_campaign:
        return "Unassigned"
    return "Direct"
