"""The pages' languages: which ones there are, which one a request gets, and their catalogues.

English is the source language (the msgids); Dutch and Spanish come from the `.po` files in
dashboard/locale/, compiled in memory at start, so no `.mo` file is built or committed.
"""

from __future__ import annotations

import gettext
import io
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from starlette.requests import Request

SOURCE_LANGUAGE = "en"
LANGUAGES = ("en", "nl", "es")

# A browser sends a handful of tags; anything past this is noise or an attack on the parser.
_MAX_HEADER = 512
_MAX_TAGS = 16


def load(locale_dir: Path) -> dict[str, gettext.NullTranslations]:
    """Each language's translations; English's are the msgids themselves."""
    catalogues: dict[str, gettext.NullTranslations] = {SOURCE_LANGUAGE: NullTranslations()}
    for lang in LANGUAGES:
        if lang == SOURCE_LANGUAGE:
            continue
        path = locale_dir / lang / "LC_MESSAGES" / "messages.po"
        with path.open("rb") as po:
            catalogue = read_po(po, locale=lang)
        compiled = io.BytesIO()
        # Fuzzy entries are left out (write_mo's default): a guess is not shown to anyone,
        # the English text is.
        write_mo(compiled, catalogue)
        compiled.seek(0)
        catalogues[lang] = Translations(compiled)
    return catalogues


def language(request: Request) -> str:
    """The user's own setting (`request.state.language`, set by the session's code) when it is
    one of ours, else the best of Accept-Language, else English."""
    chosen = getattr(request.state, "language", None)
    if chosen in LANGUAGES:
        return str(chosen)
    return negotiate(request.headers.get("accept-language", ""))


def negotiate(header: str) -> str:
    """The supported language the Accept-Language header likes best; ties go to the earlier
    tag, region subtags count for their language (es-ES is es), q=0 means "not this one"."""
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate(header[:_MAX_HEADER].split(",")[:_MAX_TAGS]):
        tag, _, params = item.partition(";")
        primary = tag.strip().split("-")[0].lower()
        if primary not in LANGUAGES:
            continue
        quality = _quality(params)
        if quality > 0:
            ranked.append((-quality, position, primary))
    return min(ranked)[2] if ranked else SOURCE_LANGUAGE


def _quality(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                quality = float(value.strip())
            except ValueError:
                return 0.0
            return quality if 0.0 <= quality <= 1.0 else 0.0
        # Other parameters are not defined for Accept-Language; ignored.
    return 1.0
