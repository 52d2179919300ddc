"""Reading the pages' forms: urlencoded, small, read once a request.

Parsed here with the standard library: Starlette's own parser needs python-multipart, for
file uploads no Zeef form has.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.datastructures import FormData
from starlette.requests import Request

# The largest of these forms is a few hundred bytes; a bigger body is not ours.
MAX_FORM = 16 * 1024
MAX_FIELDS = 50
URLENCODED = "application/x-www-form-urlencoded"


async def read_form(request: Request) -> FormData | None:
    """The request's form, or None when it is too large or not a form. Cached on the
    request, so the permission check and the handler read the body once."""
    if "form" in request.state._state:
        cached: FormData | None = request.state.form
        return cached
    form = await _parse(request)
    request.state.form = form
    return form


async def _parse(request: Request) -> FormData | None:
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_FORM):
        return None
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            return None
    if body and content_type != URLENCODED:
        return None
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        return None
    return FormData([(name, value) for name, value in pairs])


def field(form: FormData | None, name: str) -> str:
    value = form.get(name) if form is not None else None
    return value if isinstance(value, str) else ""
