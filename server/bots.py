"""The bot verdict for a User-Agent: generic marks of automation, ua-parser's Spider family and
two maintained crawler lists (crawlerdetect, crawler-user-agents). Figures: README, "Bots".
"""

from __future__ import annotations

import re
from collections.abc import Callable

import crawleruseragents  # type: ignore[import-untyped]
import re2  # type: ignore[import-untyped]
from crawlerdetect.crawlerdetect import (  # type: ignore[import-untyped]
    crawlers_data,
    get_compiled_exclusions_regex,
)

from . import useragent

# The generic marks name kinds of sender, not products: the lists name products, and these
# catch the ones no list has heard of yet. Words that browsers and in-app browsers of the
# device-detector test fixtures (34,505 strings) use too were left out ("api", "sdk", "test",
# "news", "proxy", "index"). They run on the lower-cased UA: case-insensitive matching costs
# Python's re about twice as much.

# An HTTP library or command-line client names itself first: "curl/8.5.0", "python-requests/2".
_HTTP_CLIENT = re.compile(
    r"^(?:curl|wget|python|go-http-client|go |java|okhttp|axios|node-fetch|node|undici|got|"
    r"libwww|lwp|httpie|apache-httpclient|ruby|php|perl|scrapy|aiohttp|httpx|faraday|"
    r"restsharp|postmanruntime|insomnia|dart|reqwest|rust|winhttp|mechanize|http_request|"
    r"jakarta|deno|bun)\b"
    r"|https?[ _-]?client|urllib|libcurl|guzzle|powershell"
)

# A browser driven by a program: headless modes and automation frameworks that say so.
_DRIVEN = re.compile(r"headless|phantomjs|slimerjs|playwright|puppeteer|selenium|webdriver|cypress")

# What automated senders call themselves. "bot" only at the end of a name ("googlebot",
# "ahrefsbot/7") or as a word; phone models such as "CUBOT X19" are cut out first (_DEVICE).
_AUTOMATION = re.compile(
    r"bots?(?:\b|[/_\d])|crawl|spider|scrap(?:e|er|ing|y)\b|slurp|fetch|preview|unfurl|"
    r"monitor|uptime|checker|\bcheck\b|scan(?:ner|ning)?\b|validat|archiv|\brss\b|"
    r"feed[ -]?(?:reader|fetch|parser)|parser|webhook|synthetic|audit|lighthouse|pagespeed|"
    r"screenshot|prerender|research|measure|harvest|agents?\b|verif(?:y|ier|ication)"
)

# A URL, an e-mail address or a domain: crawler operators leave a contact, browsers never do.
# A domain's name must end in a letter and nothing may follow its TLD but a separator, so
# Android package names ("com.app.name") and versions ("1.7498.EU") pass.
_CONTACT = re.compile(
    r"https?:|\bwww\.|@[a-z0-9-]+\.[a-z]{2}|(?<=[a-z])\.[a-z]{2,}/[a-z]|"
    r"(?<=[a-z])\.(?:com|net|org|io|ai|co|app|dev|info|biz|xyz|me|ly|fm|tv|uk|de|fr|nl|ru|eu|us|"
    r"site|tech|cloud)\b(?![.\w-])"
)

# In-app browsers are people reading a page inside Facebook, Instagram, TikTok and the like.
# Public crawler lists carry some of them (Meta's in-app browser also prefetches) or words that
# collide with them ("Viber", "Sogou"), and apps append device details ("...; CUBOT; S550 ...")
# that trip the word rules: a browser-shaped UA with one of these marks and no link is judged
# on the HTTP-client and headless rules only. Case-sensitive: the apps spell them so.
_IN_APP = re.compile(
    r"FBAN/|FBAV/|FB_IAB|MetaIAB|\bInstagram \d|musical_ly|BytedanceWebview|Snapchat/\d|"
    r"Pinterest/\d|\bLine/\d|KAKAOTALK|GSA/\d|Viber/\d|MicroMessenger/|LinkedInApp/|"
    r"Twitter for|TwitterAndroid|baiduboxapp/|SogouMobileBrowser/|SogouSearch|YaApp_|"
    r"com\.yandex\."
)

# A link gives away a crawler that borrows an app's name ("Twitter for iPhone BrandVerity/1.0
# (http://...)"): apps never put one in.
_URL = re.compile(r"https?:|\bwww\.")

# The device model and firmware build of an Android UA ("Android 9; CUBOT X19 Build/PPR1")
# name hardware, never a crawler, but makers pick names like "CUBOT", "Spider 8" or "Zeus",
# and a crawler list has a build number ("AP3A.240617.008", common to many phones) as a
# pattern. Words and lists are matched with them cut out.
_DEVICE = re.compile(r"(android)[ \d.]*;[^;)]*|[;(][^;()]*\bbuild/[^;)]*", re.IGNORECASE)

# The rendering engines of every browser that can run tracker.js.
_ENGINE = re.compile(r"applewebkit/\d|gecko/\d|trident/|presto/|goanna/")


class PatternList:
    """A published list of regular expressions, asked as one RE2 alternation.

    The libraries run their lists through Python's re, which backtracks through every
    alternative: on a browser's UA, which matches none, that is ~3.5 ms for crawlerdetect's
    1,462 patterns and ~0.3-0.7 ms for crawler-user-agents' 1,504. RE2 runs the whole list as
    one automaton in ~7 us. The few patterns RE2 cannot run (look-arounds) stay in Python's re.
    tests/test_bots.py checks that the verdicts equal the libraries' own on both corpora.
    """

    def __init__(self, patterns: list[str], ignore_case: bool) -> None:
        options = re2.Options()
        options.case_sensitive = not ignore_case
        options.log_errors = False
        # RE2's budget for the automaton and its cache of DFA states. With the default 8 MiB
        # the crawler-user-agents automaton thrashes (~300 us a UA); 32 MiB keeps it at
        # ~12 us once warm, for ~17 MiB of memory. The budget bounds it: a flood of novel
        # strings makes RE2 rebuild states, never grow.
        options.max_mem = 32 << 20
        portable, python_only = _split_portable(patterns, options)
        self._re2 = re2.compile("|".join(portable), options)
        flags = re.IGNORECASE if ignore_case else 0
        self._re = re.compile("|".join(python_only), flags) if python_only else None

    def search(self, text: str) -> bool:
        if self._re2.search(text) is not None:
            return True
        return self._re is not None and self._re.search(text) is not None


def _split_portable(patterns: list[str], options: re2.Options) -> tuple[list[str], list[str]]:
    """(the patterns RE2 runs, the ones it cannot), found by halving the list: a whole list
    compiles in ~8 ms, where one pattern at a time cost ~70 ms of each worker's start-up."""
    try:
        re2.compile("|".join(patterns), options)
    except re2.error:
        if len(patterns) == 1:
            return [], patterns
        half = len(patterns) // 2
        first, second = (
            _split_portable(patterns[:half], options),
            _split_portable(patterns[half:], options),
        )
        return first[0] + second[0], first[1] + second[1]
    return patterns, []


_CRAWLER_DETECT = PatternList(list(crawlers_data), ignore_case=True)
_CRAWLER_USER_AGENTS = PatternList(
    [entry["pattern"] for entry in crawleruseragents.CRAWLER_USER_AGENTS_DATA], ignore_case=False
)


def crawlerdetect_lists(user_agent: str) -> bool:
    """crawlerdetect's CrawlerDetect().is_crawler: its exclusions cut out, then its patterns."""
    agent = get_compiled_exclusions_regex().sub("", user_agent.strip())
    return bool(agent) and _CRAWLER_DETECT.search(agent)


def crawler_user_agents_lists(user_agent: str) -> bool:
    """crawleruseragents.is_crawler: any of its patterns, case-sensitive."""
    return _CRAWLER_USER_AGENTS.search(user_agent)


# The maintained lists, asked last: they cost the most on a browser's UA (~10 us together with
# RE2; the generic rules above ~0.05 ms). A tuple of (reason, check) so tests can measure the
# verdict without one of them.
LISTS: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("crawlerdetect", crawlerdetect_lists),
    ("crawler-user-agents", crawler_user_agents_lists),
)


def bot_reason(user_agent: str, parsed: useragent.FastUserAgent | None = None) -> str | None:
    """Why this User-Agent is automated traffic, or None for a person's browser.

    `parsed` is the user_agents parse when the caller has one (enrich.parse_agent does).
    Uncached this costs ~0.2 ms for a browser, which goes through every rule and both lists,
    and less for most bots; callers cache the verdict per UA (enrich.parse_agent).
    """
    if not user_agent.strip():
        return "empty"
    lowered = user_agent.lower()
    if _HTTP_CLIENT.search(lowered):
        return "http-client"
    if _DRIVEN.search(lowered):
        return "headless"
    if (
        lowered.startswith("mozilla/5.0 (")
        and _IN_APP.search(user_agent)
        and not _URL.search(lowered)
    ):
        return None
    device_free = user_agent
    if "android" in lowered or "build/" in lowered:
        device_free = _DEVICE.sub(r"\1", user_agent)
    bare = device_free.lower()
    if _AUTOMATION.search(bare):
        return "automation"
    if parsed is None:
        parsed = useragent.parse(user_agent)
    if parsed.is_bot:
        return "spider"
    if _CONTACT.search(bare):
        return "contact"
    if parsed.os.family == "Other" and not _ENGINE.search(lowered):
        # Neither an operating system nor a browser engine: nothing people read the web with
        # today. (WAP-era phones land here too; they cannot run tracker.js anyway.)
        return "no-platform"
    for reason, listed in LISTS:
        if listed(device_free):
            return reason
    return None


def is_bot(user_agent: str) -> bool:
    """True for automated traffic. Uncached: enrich.parse_agent is the cached way in."""
    return bot_reason(user_agent) is not None
