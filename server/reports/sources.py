"""Where a visit came from: its referrer grouped into a named source, and its channel.

Sources come from Snowplow's referrer list (the referer-parser package's data file, which is
what Plausible's sources are built on), so "Google" is every Google search domain, not a list
we keep. Channels follow Plausible's grouping, itself modelled on Google Analytics' default
channel groups.
"""

from __future__ import annotations

import json
import re
from functools import cache, lru_cache
from importlib import resources

# Hosts that appeared after the list's last release (2016). Few, and only names a site owner
# would otherwise see split across hosts.
NEWER = {
    "x.com": ("Twitter", "social"),
    "m.youtube.com": ("Youtube", "social"),
    "chatgpt.com": ("ChatGPT", "ai"),
    "chat.openai.com": ("ChatGPT", "ai"),
    "perplexity.ai": ("Perplexity", "ai"),
    "www.perplexity.ai": ("Perplexity", "ai"),
    "claude.ai": ("Claude", "ai"),
    "gemini.google.com": ("Gemini", "ai"),
    "copilot.microsoft.com": ("Copilot", "ai"),
    "bsky.app": ("Bluesky", "social"),
    "threads.net": ("Threads", "social"),
    "mastodon.social": ("Mastodon", "social"),
    "news.ycombinator.com": ("Hacker News", "social"),
    "github.com": ("GitHub", "unknown"),
}
# Shorthands people tag links with; a full source name (any case) is matched by the list.
UTM_NAMES = {"fb": "Facebook", "ig": "Instagram", "x": "Twitter", "yt": "Youtube",
             "li": "LinkedIn", "tw": "Twitter"}  # fmt: skip
VIDEO_SOURCES = {"Youtube", "Vimeo", "TikTok", "Twitch", "Dailymotion"}
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


@cache
def _names() -> dict[str, tuple[str, str]]:
    """lower-cased source name -> (name, medium): how a utm_source of "google" or "Bing" is
    known as the same source as the referrer would be."""
    names: dict[str, tuple[str, str]] = {}
    # "Google" is in the list as search and as other Google services: search wins.
    rank = {"search": 0, "social": 1, "email": 2, "ai": 3}
    for name, medium in sorted(set(_hosts().values()), key=lambda v: rank.get(v[1], 9)):
        names.setdefault(name.lower(), (name, medium))
    names.update({short: names.get(full.lower(), (full, "social"))
                  for short, full in UTM_NAMES.items()})  # fmt: skip
    return names


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
    """A visit's source, resolved as Plausible does: a tagged link's utm_source first (as the
    list names it when it is a known source, else as tagged), then the referrer's named
    source, else the referrer's host; None when it came directly."""
    if utm_source:
        known = _names().get(utm_source.lower())
        return known[0] if known else utm_source
    if referrer_host:
        found = lookup(referrer_host)
        if found:
            return found[0]
        return referrer_host.lower().removeprefix("www.")
    return None


def _kind(referrer_host: str | None, utm_source: str | None) -> str | None:
    """search, social, email, ai or unknown: what kind of source a visit came from."""
    if utm_source:
        known = _names().get(utm_source.lower())
        return known[1] if known else None
    found = lookup(referrer_host)
    return found[1] if found else None


@lru_cache(maxsize=16384)
def channel(
    referrer_host: str | None,
    utm_source: str | None,
    utm_medium: str | None,
    utm_campaign: str | None,
) -> str:
    """The acquisition channel, by the rules of Google Analytics' default channel groups as
    Plausible applies them: campaign parameters first, then the kind of source."""
    medium = (utm_medium or "").lower()
    campaign = (utm_campaign or "").lower()
    name = source(referrer_host, utm_source)
    kind = _kind(referrer_host, utm_source)
    paid = bool(re.search(r"^(.*cp.*|ppc|retargeting|paid.*)$", medium))
    if medium == "cross-network" or "cross-network" in campaign:
        return "Cross-network"
    if name in SHOPPING_SOURCES or re.search(r"^(.*(([^a-df-z]|^)shop|shopping).*)$", campaign):
        return "Paid Shopping" if paid else "Organic Shopping"
    if kind == "search" and paid:
        return "Paid Search"
    if kind == "social" and paid:
        return "Paid Social"
    if name in VIDEO_SOURCES and paid:
        return "Paid Video"
    if medium in ("display", "banner", "expandable", "interstitial", "cpm"):
        return "Display"
    if paid:
        return "Paid Other"
    if kind == "search" or medium == "organic":
        return "Organic Search"
    if name in VIDEO_SOURCES or "video" in medium:
        return "Organic Video"
    if kind == "social" or medium in ("social", "social-network", "social-media", "sm"):
        return "Organic Social"
    if kind == "email" or "mail" in medium or (utm_source or "").lower() in ("email", "e-mail"):
        return "Email"
    if medium == "affiliate":
        return "Affiliates"
    if medium == "audio":
        return "Audio"
    if medium == "sms" or (utm_source or "").lower() == "sms":
        return "SMS"
    if medium.endswith("push") or "mobile" in medium or "notification" in medium:
        return "Mobile Push Notifications"
    if kind == "ai":
        return "AI Assistants"
    if name is not None or medium in ("referral", "app", "link"):
        return "Referral"
    return "Direct"
