"""Consent: each site's banner configuration, its texts, and the proof of every decision.

The banner itself is consent/consent.js; this module answers its two requests:
GET /consent/config (what to show) and POST /api/consent (what the visitor chose).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .events import ConsentRecord, Site
from .sites import SiteRegistry
from .storage import Storage

# Package data: `npm run build` copies the sources, consent/i18n/*.json, here, so an installed
# wheel has them (tests/test_packaging.py).
I18N = Path(__file__).resolve().parent / "static" / "i18n"
LANGUAGES = ("en", "nl", "es")
BUILTIN_CATEGORIES = ("necessary", "analytics", "marketing", "preferences")
ACTIONS = ("accept_all", "reject_all", "custom", "withdraw", "renew")
DEFAULT_LIFETIME_DAYS = 182  # six months
MAX_LIFETIME_DAYS = 396  # thirteen months, the most the Dutch and French regulators accept
MAX_RECORD_BODY = 4096

_CATEGORY = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_CONSENT_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
_HASH = re.compile(r"^[0-9a-f]{64}$")
_CORS = {"access-control-allow-origin": "*"}


@dataclass(frozen=True)
class DeclaredCookie:
    """A cookie a category sets: shown to the visitor, deleted when consent is withdrawn."""

    name: str  # a trailing * matches any suffix
    purpose: str
    lifetime: str
    category: str
    domain: str | None = None
    path: str = "/"


@dataclass(frozen=True)
class ConsentConfig:
    """A site's banner. A site never configured gets necessary + analytics."""

    categories: tuple[str, ...] = ("necessary", "analytics")
    revision: int = 1
    lifetime_days: int = DEFAULT_LIFETIME_DAYS
    policy_url: str | None = None
    controller: str | None = None
    require_consent: bool = False
    consent_mode_v2: bool = False
    cookies: tuple[DeclaredCookie, ...] = ()
    # language -> text key -> text, over the translation files
    texts: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def to_json(self) -> str:
        data = asdict(self)
        data["texts"] = {lang: dict(texts) for lang, texts in self.texts.items()}
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ConsentConfig:
        data = json.loads(text)
        data["categories"] = tuple(data["categories"])
        data["cookies"] = tuple(DeclaredCookie(**cookie) for cookie in data.get("cookies", ()))
        return cls(**data)

    def checked(self) -> ConsentConfig:
        """This config, or ValueError naming what is wrong with it."""
        categories = tuple(dict.fromkeys(("necessary", *self.categories)))
        for category in categories:
            if not _CATEGORY.match(category):
                raise ValueError(f"category names are lower-case words: {category!r}")
        if not 1 <= self.revision <= 1_000_000:
            raise ValueError("revision must be a positive number")
        if not 1 <= self.lifetime_days <= MAX_LIFETIME_DAYS:
            raise ValueError("consent lifetime must be between 1 day and 13 months")
        if self.policy_url and not re.match(r"^https?://\S+$", self.policy_url):
            raise ValueError("the policy URL must be an http(s) URL")
        for cookie in self.cookies:
            if cookie.category not in categories or cookie.category == "necessary":
                raise ValueError(f"cookie {cookie.name!r}: no such optional category")
        for lang in self.texts:
            if lang not in LANGUAGES:
                raise ValueError(f"no translation for language {lang!r}")
        # A byte that is not UTF-8 in a command-line argument arrives as a lone surrogate
        # ("\udcff"): stored, it made every /consent/config answer for the site a 500.
        strings = [self.policy_url, self.controller]
        strings += [value for cookie in self.cookies for value in asdict(cookie).values()]
        strings += [t for texts in self.texts.values() for pair in texts.items() for t in pair]
        for text in strings:
            if isinstance(text, str) and not _is_utf8(text):
                raise ValueError(f"not valid UTF-8: {text.encode(errors='replace').decode()!r}")
        return replace(self, categories=categories)


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_lifetime(text: str) -> int:
    """'6m', '13m', '90d' or '1y' -> days."""
    match = re.fullmatch(r"\s*(\d+)\s*([dmy])\s*", text.lower())
    if not match:
        raise ValueError("lifetime looks like 6m, 13m or 180d")
    number, unit = int(match[1]), match[2]
    days = {"d": number, "m": round(number * 30.44), "y": number * 365}[unit]
    if not 1 <= days <= MAX_LIFETIME_DAYS:
        raise ValueError("consent lifetime must be between 1 day and 13 months")
    return days


def parse_cookie(text: str) -> DeclaredCookie:
    """'CATEGORY:NAME:LIFETIME:PURPOSE', as given to `zeef consent configure --cookie`."""
    parts = text.split(":", 3)
    if len(parts) != 4 or not all(part.strip() for part in parts):
        raise ValueError("a cookie is CATEGORY:NAME:LIFETIME:PURPOSE, e.g. marketing:_fbp:3m:ads")
    category, name, lifetime, purpose = (part.strip() for part in parts)
    return DeclaredCookie(name=name, purpose=purpose, lifetime=lifetime, category=category)


class Translations:
    """The banner's texts per language, from server/static/i18n/*.json."""

    def __init__(self, directory: Path = I18N) -> None:
        # Every language or none: a missing file is a broken install, and skipping it served
        # a banner with no words at all from an installed wheel.
        self.texts: dict[str, dict[str, str]] = {
            lang: json.loads((directory / f"{lang}.json").read_text(encoding="utf-8"))
            for lang in LANGUAGES
        }

    def pick(self, wanted: str | None) -> str:
        primary = (wanted or "").split("-")[0].split("_")[0].lower()
        return primary if primary in self.texts else "en"


def public_config(
    site: Site, config: ConsentConfig, lang: str, translations: Translations
) -> dict[str, Any]:
    """What the banner needs to render, in one language, with a hash of exactly that."""
    texts = {**translations.texts.get(lang, {}), **config.texts.get(lang, {})}
    months = round(config.lifetime_days / 30.44)
    own = {
        "necessary": [
            DeclaredCookie(
                "zeef_consent",
                texts.get("cookie.zeef_consent.purpose", ""),
                texts.get("lifetime.months", "{n} months").replace("{n}", str(months)),
                "necessary",
            )
        ],
        "analytics": [
            DeclaredCookie(
                "zeef_id",
                texts.get("cookie.zeef_id.purpose", ""),
                texts.get("lifetime.months", "{n} months").replace("{n}", str(min(months, 13))),
                "analytics",
            )
        ],
    }
    categories = []
    for category in config.categories:
        cookies = own.get(category, []) + [c for c in config.cookies if c.category == category]
        categories.append(
            {
                "id": category,
                "required": category == "necessary",
                "name": texts.get(f"category.{category}.name", category.capitalize()),
                "description": texts.get(f"category.{category}.description", ""),
                "cookies": [
                    {k: v for k, v in asdict(cookie).items() if k != "category"}
                    for cookie in cookies
                ],
            }
        )
    shown = {
        "texts": texts,
        "categories": categories,
        "controller": config.controller,
        "policy_url": config.policy_url,
        "revision": config.revision,
    }
    digest = hashlib.sha256(json.dumps(shown, sort_keys=True).encode()).hexdigest()
    return {
        "site": site.domain,
        "revision": config.revision,
        "lifetime_days": config.lifetime_days,
        "policy_url": config.policy_url,
        "controller": config.controller,
        "require_consent": config.require_consent,
        "consent_mode_v2": config.consent_mode_v2,
        "language": lang,
        "texts": texts,
        "texts_hash": digest,
        "categories": categories,
    }


_RECORD_KEYS = {
    "site", "consent_id", "action", "choices", "revision", "language", "texts_hash", "path", "gpc",
}  # fmt: skip


def parse_record(data: Any, site: Site, config: ConsentConfig, now: int) -> ConsentRecord:
    """Validate a decision against the site's config; ValueError says what is wrong."""
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object")
    if set(data) != _RECORD_KEYS:
        missing, extra = _RECORD_KEYS - set(data), set(data) - _RECORD_KEYS
        raise ValueError(f"fields missing: {sorted(missing)}, unknown: {sorted(extra)[:5]}")
    consent_id = data["consent_id"]
    if not isinstance(consent_id, str) or not _CONSENT_ID.match(consent_id):
        raise ValueError("consent_id must be a random (version 4) UUID")
    if data["action"] not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)}")
    choices = data["choices"]
    if not isinstance(choices, dict) or set(choices) != set(config.categories):
        raise ValueError(f"choices must give every category: {', '.join(config.categories)}")
    if not all(isinstance(value, bool) for value in choices.values()):
        raise ValueError("each choice is true or false")
    if choices["necessary"] is not True:
        raise ValueError("necessary cookies cannot be refused")
    revision = data["revision"]
    if isinstance(revision, bool) or not isinstance(revision, int) or not 1 <= revision <= 10**6:
        raise ValueError("revision must be a positive number")
    if data["language"] not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}")
    if not isinstance(data["texts_hash"], str) or not _HASH.match(data["texts_hash"]):
        raise ValueError("texts_hash must be a SHA-256 hex digest")
    path = data["path"]
    if not isinstance(path, str) or not path.startswith("/") or len(path) > 1000:
        raise ValueError("path must be the page's path")
    if not isinstance(data["gpc"], bool):
        raise ValueError("gpc must be true or false")
    return ConsentRecord(
        consent_id=consent_id,
        site_id=site.id,
        created_at=now,
        action=data["action"],
        choices={category: choices[category] for category in config.categories},
        revision=revision,
        language=data["language"],
        texts_hash=data["texts_hash"],
        path=path.split("?", 1)[0].split("#", 1)[0],
        gpc=data["gpc"],
    )


async def site_config(storage: Storage, site: Site) -> ConsentConfig:
    stored = await storage.consent_config(site.id)
    return ConsentConfig.from_json(stored) if stored else ConsentConfig()


class ConsentEndpoints:
    """GET /consent/config and POST /api/consent."""

    def __init__(
        self,
        storage: Storage,
        sites: SiteRegistry,
        clock: Callable[[], datetime] | None = None,
        translations: Translations | None = None,
    ) -> None:
        self.storage = storage
        self.sites = sites
        self.clock = clock or (lambda: datetime.now(UTC))
        self.translations = translations or Translations()

    async def _site(self, domain: object) -> Site | None:
        if not isinstance(domain, str) or not domain or len(domain) > 253:
            return None
        found = await self.sites.lookup([domain.strip().lower()])
        return found[0] if found else None

    async def config(self, request: Request) -> Response:
        site = await self._site(request.query_params.get("site"))
        if site is None:
            return JSONResponse({"error": "unknown site"}, status_code=404, headers=_CORS)
        config = await site_config(self.storage, site)
        lang = self.translations.pick(request.query_params.get("lang"))
        body = public_config(site, config, lang, self.translations)
        # Short caching: a new revision reaches visitors within five minutes.
        headers = {**_CORS, "cache-control": "public, max-age=300"}
        return JSONResponse(body, headers=headers)

    async def record(self, request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(
                status_code=204,
                headers={
                    **_CORS,
                    "access-control-allow-methods": "POST, OPTIONS",
                    "access-control-allow-headers": "content-type",
                },
            )
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_RECORD_BODY:
                return _refuse(413, "body larger than 4 KiB")
        try:
            # orjson, not json: it refuses a lone surrogate escape ("\ud800"), which json.loads
            # turns into a str that SQLite cannot encode (a 500 at bind, issue 14); and it
            # refuses invalid UTF-8 and nesting past 1,024 levels with the same error.
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _refuse(400, "body is not valid JSON (UTF-8, no lone surrogates)")
        site = await self._site(data.get("site") if isinstance(data, dict) else None)
        if site is None:
            return _refuse(400, "unknown site")
        config = await site_config(self.storage, site)
        try:
            record = parse_record(data, site, config, int(self.clock().timestamp()))
        except ValueError as exc:
            return _refuse(400, str(exc))
        await self.storage.insert_consent_record(record)
        return JSONResponse({"consent_id": record.consent_id}, status_code=201, headers=_CORS)


def _refuse(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=_CORS)
