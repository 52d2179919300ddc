"""The dashboard's filters, as its URL carries them (`filters=`, the Stats API's v1 syntax): read
into chips, changed by a row's link, a chip's remove link, or the filter form, whose fields the
server folds into `filters` and answers with the clean URL (`from_form`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from ..reports.filters import GOAL, PROPS, FilterError, dimension, parse_v1
from .templates import N_

# The form's own parameters: the server reads them, then redirects to a URL without them.
DIMENSION, OPERATOR, VALUE, REPLACE = (
    "filter_dimension",
    "filter_operator",
    "filter_value",
    "filter_replace",
)
FORM_FIELDS = (DIMENSION, OPERATOR, VALUE, REPLACE)

# What the form offers, grouped as the dashboard's panels are; the goal only to a site with goals
# (a goal filter naming no goal is a 400).
GROUPS = (
    (N_("Top pages"), (("event:page", N_("Page")),
                       ("visit:entry_page", N_("Entry page")),
                       ("visit:exit_page", N_("Exit page")))),
    (N_("Top sources"), (("visit:source", N_("Source")),
                         ("visit:channel", N_("Channel")),
                         ("visit:referrer", N_("Referrer")),
                         ("visit:utm_source", N_("UTM source")),
                         ("visit:utm_medium", N_("UTM medium")),
                         ("visit:utm_campaign", N_("UTM campaign")),
                         ("visit:utm_content", N_("UTM content")),
                         ("visit:utm_term", N_("UTM term")))),
    (N_("Locations"), (("visit:country", N_("Country")),
                       ("visit:region", N_("Region")),
                       ("visit:city", N_("City")))),
    (N_("Devices"), (("visit:browser", N_("Browser")),
                     ("visit:browser_version", N_("Browser version")),
                     ("visit:os", N_("Operating system")),
                     ("visit:os_version", N_("OS version")),
                     ("visit:device", N_("Device")))),
    (N_("Goals"), ((GOAL, N_("Goal")),
                   ("event:name", N_("Custom event")))),
)  # fmt: skip
# Dimensions a URL may name that the form does not offer (Stats API links, property rows).
OTHER_LABELS = {
    "visit:hostname": N_("Hostname"),
    "event:hostname": N_("Hostname"),
    "visit:entry_page_hostname": N_("Entry page hostname"),
}
LABELS = {dim: label for _heading, dims in GROUPS for dim, label in dims} | OTHER_LABELS
# The form's operators, by the Stats API's names, and their v1 symbols. A wildcard (`*` in an
# `is` value) is the v1 syntax's own rule, so `matches` reads back as `is`.
OPERATORS = (
    ("is", "==", N_("is")),
    ("is_not", "!=", N_("is not")),
    ("contains", "~", N_("contains")),
    ("contains_not", "!~", N_("does not contain")),
)
SYMBOLS = {name: symbol for name, symbol, _label in OPERATORS}
VERBS = {name: label for name, _symbol, label in OPERATORS}
FORM_OPERATOR = {"matches": "is", "matches_not": "is_not"}
# The parser's reading of one filter (server/reports/filters.py: parse_v1).
PART = re.compile(r"\s*([a-z_:]+[^=!~]*?)\s*(==|!=|!~|~)\s*(.*)$", re.S)
# A dimension the form may write: nothing in it that the parser would read as more.
NAME = re.compile(r"[a-z_:]+([^=!~;|\\]*[^=!~;|\\\s])?")
# The v1 syntax escapes `|` and `;` with a backslash but has no escape for a backslash itself,
# so a value cannot have one just before either, nor end in one (another filter may follow).
UNWRITABLE = re.compile(r"\\([|;]|$)")


class FormError(ValueError):
    """The filter form filled in wrongly: the message, translated, says how, for a 400."""


@dataclass(frozen=True)
class Chip:
    """One filter as the page shows it, with what its Edit form is prefilled with: its place in
    `filters` (`index`, which the form replaces), the form's operator and one value a line."""

    label: str
    remove_url: str
    index: int = 0
    dimension: str = ""
    dimension_label: str = ""
    operator: str = ""
    value: str = ""

    @property
    def editable(self) -> bool:
        return bool(self.dimension)


def filters(params: Mapping[str, str]) -> list[str]:
    """The filters of `filters=`, each as written (escapes kept). A `\\;` is part of a value:
    the split follows the parser's rule, a backslash takes the next character whatever it is."""
    parts: list[str] = []
    current: list[str] = []
    escaping = False
    for char in params.get("filters", ""):
        if escaping:
            escaping = False
        elif char == "\\":
            escaping = True
        elif char == ";":
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [part for part in parts if part.strip()]


def split(part: str) -> tuple[str, str, str]:
    """One filter's dimension, v1 operator (`==`, `!=`, `~`, `!~`) and values as written."""
    match = PART.match(part)
    if not match:
        return part, "", ""
    name, symbol, values = match.groups()
    return name.strip(), symbol, values


def escaped(value: str) -> str:
    """A value as the v1 syntax writes it: `|` separates values and `;` filters."""
    # NOTE: a row's value with a backslash before `|` or `;` (UNWRITABLE) reads back otherwise;
    # no page or visitor has sent one yet.
    return value.replace("|", "\\|").replace(";", "\\;")


def filtered(params: Mapping[str, str], dim: str, value: Any) -> str:
    """This page's URL filtered to one value of a dimension (a row's link), in place of an
    earlier `is` filter on it."""
    if value in (None, ""):
        value = "(none)"
    wanted = f"{dim}=={escaped(str(value))}"
    current = [f for f in filters(params) if split(f)[:2] != (dim, "==")]
    return _with_filters(params, [*current, wanted])


def chips(params: Mapping[str, str], _: Callable[[str], str]) -> list[Chip]:
    """A chip for each filter, in words of the page's language."""
    parts = filters(params)
    out = []
    for index, part in enumerate(parts):
        remove_url = _with_filters(params, parts[:index] + parts[index + 1 :])
        try:
            [read] = parse_v1(part)
        except (FilterError, ValueError):
            # The page answers 400 to such a filter before it shows chips; a chip all the same.
            out.append(Chip(part, remove_url, index))
            continue
        operator = FORM_OPERATOR.get(read.op, read.op)
        name = label(read.dimension, _)
        shown = (" " + _("or") + " ").join(read.values)
        out.append(Chip(f"{name} {_(VERBS[operator])} {shown}", remove_url, index,
                        read.dimension, name, operator, "\n".join(read.values)))  # fmt: skip
    return out


def label(dim: str, _: Callable[[str], str]) -> str:
    """A dimension in words: the form's label, or a custom property's name."""
    if dim in LABELS:
        return _(LABELS[dim])
    if dim.startswith(PROPS):
        return _("Property %(name)s") % {"name": dim[len(PROPS) :]}
    return dim


def form(
    params: Mapping[str, str],
    _: Callable[[str], str],
    goals: bool,
    offered: Callable[[str], bool] = lambda _dimension: True,
) -> dict[str, Any]:
    """What _filters.html's forms offer: the dimensions in groups (those `offered`: a share
    link's sections'), the operators, and the page's own parameters, which each form sends
    back beside its fields."""
    groups = [
        {"label": _(heading),
         "options": [(dim, _(text)) for dim, text in dims
                     if (goals or dim != GOAL) and offered(dim)]}
        for heading, dims in GROUPS
    ]  # fmt: skip
    groups = [group for group in groups if group["options"]]
    return {
        "groups": groups,
        "offered": {dim for group in groups for dim, _text in group["options"]},
        "operators": [(name, _(text)) for name, _symbol, text in OPERATORS],
        "hidden": [(k, v) for k, v in params.items() if k not in FORM_FIELDS],
    }


def submitted(params: Mapping[str, str]) -> bool:
    return any(name in params for name in FORM_FIELDS)


def from_form(params: Mapping[str, str], _: Callable[[str], str]) -> str:
    """The page's URL (its query string) with the form's filter added, or put in the place of
    the one it edits (`filter_replace`), and the form's fields gone: the URL to redirect to.
    FormError says what is wrong with the form."""
    try:
        dim = dimension(params.get(DIMENSION, ""))
    except FilterError:
        raise FormError(_("Choose what to filter by.")) from None
    if not NAME.fullmatch(dim):  # a property's name that would read as more than a name
        raise FormError(_("Choose what to filter by."))
    operator = params.get(OPERATOR, "")
    if operator not in SYMBOLS:
        raise FormError(_("Choose is, is not, contains or does not contain."))
    values = [line.strip() for line in params.get(VALUE, "").splitlines() if line.strip()]
    if not values:
        raise FormError(_("Enter a value to filter by."))
    if any(UNWRITABLE.search(value) for value in values):
        raise FormError(_("A value cannot end in a backslash or have one before | or ;."))
    wanted = dim + SYMBOLS[operator] + "|".join(escaped(value) for value in values)
    parts = filters(params)
    replace = params.get(REPLACE, "")
    if replace:
        if not replace.isdigit() or int(replace) >= len(parts):
            raise FormError(_("That filter is no longer on the page."))
        parts[int(replace)] = wanted
    elif wanted not in parts:
        # A second `is` on a dimension would leave no visit at all: it takes the first's place,
        # as a row's link does. Other filters combine (not this, not that).
        same = [i for i, part in enumerate(parts) if split(part)[:2] == (dim, "==")]
        if operator == "is" and same:
            parts[same[0]] = wanted
        else:
            parts.append(wanted)
    try:
        parse_v1(";".join(parts))
    except FilterError as exc:
        raise FormError(str(exc)) from None
    return _with_filters(params, parts)


def _with_filters(params: Mapping[str, str], parts: list[str]) -> str:
    """This page's URL with these filters (none: no `filters=`) and without the form's fields."""
    kept = {k: v for k, v in params.items() if k not in FORM_FIELDS and k != "wait"}
    if parts:
        kept["filters"] = ";".join(parts)  # where it was, if it was
    else:
        kept.pop("filters", None)
    return "?" + urlencode(kept) if kept else "?"
