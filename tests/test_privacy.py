"""Address handling: truncation, whom X-Forwarded-For is believed from, the keyed hash."""

from __future__ import annotations

import ipaddress

import pytest

from server.config import Settings
from server.enrich import Geo
from server.events import Site
from server.privacy import (
    Addresses,
    SaltPair,
    client_ip,
    consented_visitor_hash,
    parse_ip,
    truncate_ip,
    visitor_hash,
    visitor_hashes,
)

PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))


@pytest.mark.parametrize(
    ("address", "mask", "expected"),
    [
        ("81.2.69.142", 1, "81.2.69.0"),
        ("81.2.69.142", 2, "81.2.0.0"),
        ("81.2.69.142", 3, "81.0.0.0"),
        ("2001:db8:85a3:1234:5678:8a2e:370:7334", 1, "2001:db8:85a3:1234::"),
        ("2001:db8:85a3:1234:5678:8a2e:370:7334", 2, "2001:db8:85a3::"),
        ("2001:db8:85a3:1234:5678:8a2e:370:7334", 3, "2001:db8::"),
        ("::ffff:81.2.69.142", 2, "81.2.0.0"),
        ("2002:5102:458e::1", 2, "81.2.0.0"),  # 6to4: 81.2.69.142 inside the first 48 bits
    ],
    ids=["v4-1", "v4-2", "v4-3", "v6-64", "v6-48", "v6-32", "v4-mapped", "6to4"],
)
def test_truncate_ip(address: str, mask: int, expected: str) -> None:
    parsed = parse_ip(address)
    assert parsed is not None
    assert truncate_ip(parsed, mask) == expected


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("81.2.69.142", None, "81.2.69.142"),
        ("81.2.69.142", "1.2.3.4", "81.2.69.142"),  # untrusted peer: header ignored
        ("10.0.0.1", "1.2.3.4", "1.2.3.4"),
        ("10.0.0.1", "6.6.6.6, 1.2.3.4", "1.2.3.4"),  # the visitor cannot forge the left part
        ("10.0.0.1", "1.2.3.4, 10.0.0.2", "1.2.3.4"),  # a chain of trusted proxies
        ("10.0.0.1", "garbage", "10.0.0.1"),
        ("10.0.0.1", "2001:db8::1", "2001:db8::1"),
        ("fd00::1", "1.2.3.4", "1.2.3.4"),
    ],
    ids=["no-header", "untrusted", "trusted", "forged-left", "chain", "garbage", "v6", "v6-proxy"],
)
def test_client_ip(peer: str, forwarded: str | None, expected: str) -> None:
    assert str(client_ip(peer, forwarded, PROXIES)) == expected


def test_visitor_hash_depends_on_salt_site_address_and_agent() -> None:
    address = parse_ip("81.2.69.142")
    other = parse_ip("81.2.69.143")
    base = visitor_hash(b"s" * 32, 1, address, "UA")
    assert base == visitor_hash(b"s" * 32, 1, address, "UA")
    assert base != visitor_hash(b"t" * 32, 1, address, "UA")
    assert base != visitor_hash(b"s" * 32, 2, address, "UA")
    assert base != visitor_hash(b"s" * 32, 1, other, "UA")
    assert base != visitor_hash(b"s" * 32, 1, address, "UA2")
    assert -(2**63) <= base < 2**63


def test_client_ip_believes_only_the_networks_it_is_given() -> None:
    # The proxies seen are remembered per set of trusted networks, never across sets.
    assert str(client_ip("10.0.0.1", "1.2.3.4", PROXIES)) == "1.2.3.4"
    others = (ipaddress.ip_network("192.168.0.0/16"),)
    assert str(client_ip("10.0.0.1", "1.2.3.4", others)) == "10.0.0.1"
    assert str(client_ip("192.168.7.7", "10.0.0.9, 1.2.3.4", others)) == "1.2.3.4"
    assert str(client_ip("10.0.0.1", "1.2.3.4", PROXIES)) == "1.2.3.4"


def test_addresses_give_hashes_geo_and_label_never_the_address() -> None:
    settings = Settings(trusted_proxies=PROXIES, ip_mask_bytes=2)
    addresses = Addresses(settings)
    addresses.visitor_key = b"k" * 32
    salts = SaltPair("2026-03-14", 0.0, b"s" * 32, b"t" * 32)
    sites = [Site(1, "example.com", "UTC", 0), Site(2, "example.org", "UTC", 0)]
    scope = {"client": ("10.0.0.1", 40000), "headers": [(b"x-forwarded-for", b"81.2.69.142")]}
    headers = dict(scope["headers"])
    address = parse_ip("81.2.69.142")

    ids, geo = addresses.identify(scope, headers, "UA", salts, sites, None)
    assert ids == [(site, *visitor_hashes(salts, site.id, address, "UA")) for site in sites]
    assert geo == Geo()  # no GeoIP database configured
    consented, _ = addresses.identify(scope, headers, "UA", salts, sites, "first-party-id-0123")
    assert consented == [
        (site, consented_visitor_hash(b"k" * 32, site.id, "first-party-id-0123"), None)
        for site in sites
    ]
    assert addresses.label(scope) == "81.2.0.0"
    assert addresses.label({"client": None, "headers": []}) == "-"
