"""Only server/privacy.py holds a full client address: no other module reads the socket peer or
X-Forwarded-For, calls the geo reader, or calls the functions that return a full address.

Read from the source with `ast`, so a new module that starts handling addresses fails here
before it can leak one. Each check is also run on privacy.py, where it must find something.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parents[1] / "server"
HOLDER = SERVER / "privacy.py"
# Where the geo reader is defined: it may name its own class and library.
GEO_READER = SERVER / "enrich.py"

# Headers that carry a client's address (only X-Forwarded-For is believed today).
ADDRESS_HEADERS = {"x-forwarded-for", "forwarded", "x-real-ip"}
# The functions that return a full address.
ADDRESS_FUNCTIONS = {"client_ip", "parse_ip"}


def _constant(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
        value = node.value
        return (value.decode("latin-1") if isinstance(value, bytes) else value).lower()
    return None


def _source(node: ast.AST) -> str:
    return ast.unparse(node).lower()


def address_headers(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        text = _constant(node)
        if text in ADDRESS_HEADERS:
            yield f"line {node.lineno}: {text!r}"  # type: ignore[attr-defined]


def peer_reads(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if _reads_peer(node):
            yield f"line {node.lineno}: {ast.unparse(node)}"  # type: ignore[attr-defined]


def _reads_peer(node: ast.AST) -> bool:
    """scope["client"], scope.get("client"), request.client."""
    if isinstance(node, ast.Subscript):
        return _constant(node.slice) == "client"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr == "get" and bool(node.args) and _constant(node.args[0]) == "client"
    return isinstance(node, ast.Attribute) and node.attr == "client"


def address_function_calls(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in ADDRESS_FUNCTIONS:
                yield f"line {node.lineno}: {ast.unparse(node)}"
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name in ADDRESS_FUNCTIONS:
                    yield f"line {node.lineno}: imports {alias.name}"


def geo_lookups(tree: ast.AST) -> Iterator[str]:
    """A lookup on anything named like a geo reader (sites.lookup is something else)."""
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "lookup"
            and "geo" in _source(node.func.value)
        ):
            yield f"line {node.lineno}: {ast.unparse(node)}"


def geo_reader_names(tree: ast.AST) -> Iterator[str]:
    """The reader's class or library by name: whoever can make one can call it."""
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Name):
            names = [node.id]
        elif isinstance(node, ast.Attribute):
            names = [node.attr]
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [alias.name for alias in node.names]
            if isinstance(node, ast.ImportFrom):
                names.append(node.module or "")
        for name in names:
            if name == "GeoIP" or name.startswith("maxminddb"):
                yield f"line {node.lineno}: {name}"  # type: ignore[attr-defined]


Check = Callable[[ast.AST], Iterator[str]]
CHECKS: dict[str, tuple[Check, set[Path]]] = {
    "reads an address header": (address_headers, {HOLDER}),
    "reads the socket peer": (peer_reads, {HOLDER}),
    "calls a function that returns a full address": (address_function_calls, {HOLDER}),
    "calls the geo reader": (geo_lookups, {HOLDER}),
    "names the geo reader": (geo_reader_names, {HOLDER, GEO_READER}),
}


def _modules() -> list[Path]:
    return sorted(SERVER.rglob("*.py"))


def _tree(path: Path) -> ast.AST:
    return ast.parse(path.read_text(), filename=str(path))


@pytest.mark.parametrize("what", list(CHECKS))
def test_no_module_but_privacy_handles_addresses(what: str) -> None:
    check, allowed = CHECKS[what]
    modules = [path for path in _modules() if path not in allowed]
    assert len(modules) >= 15, "server/ not where this test looks"
    found = {
        str(path.relative_to(SERVER.parent)): hits
        for path in modules
        if (hits := list(check(_tree(path))))
    }
    assert not found, f"only server/privacy.py may do this; {what}: {found}"


@pytest.mark.parametrize("what", list(CHECKS))
def test_each_check_finds_what_privacy_does(what: str) -> None:
    # A check that finds nothing where the address is handled would pass anywhere.
    check, _ = CHECKS[what]
    assert list(check(_tree(HOLDER)))


@pytest.mark.parametrize(
    ("source", "what"),
    [
        ('forwarded = headers.get(b"X-Forwarded-For")', "reads an address header"),
        ('peer = request.scope["client"]', "reads the socket peer"),
        ("host = request.client.host", "reads the socket peer"),
        (
            "address = privacy.client_ip(peer, None, ())",
            "calls a function that returns a full address",
        ),
        ("from .privacy import parse_ip", "calls a function that returns a full address"),
        ("geo = self.geoip.lookup(address)", "calls the geo reader"),
        ("reader = enrich.GeoIP(path)", "names the geo reader"),
    ],
    ids=["xff-header", "scope-client", "request-client", "client-ip", "import", "geo", "geo-class"],
)
def test_each_check_catches_a_leak(source: str, what: str) -> None:
    check, _ = CHECKS[what]
    assert list(check(ast.parse(source)))


def test_the_lookup_of_sites_is_not_mistaken_for_the_geo_reader() -> None:
    assert not list(geo_lookups(ast.parse("sites = await self.sites.lookup(domains)")))
