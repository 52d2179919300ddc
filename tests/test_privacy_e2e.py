"""The privacy invariant, end to end: a full client address never reaches the disk, a log line,
an error message or a response.

The real server runs in a subprocess; clients reach it as real socket peers (127.x.y.z, not
trusted) and through X-Forwarded-For from a trusted proxy (127.0.0.1), with good and bad
requests. Then every response, the whole server log and the raw database files are searched.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from .live import LiveServer, LiveServerError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

SITE = "example.com"
MASK_BYTES = 2
IPV6_PREFIX = {1: 64, 2: 48, 3: 32}
PROXY = "127.0.0.1"  # trusted, and the address the server listens on: legitimately everywhere

BROWSER = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Safari/605.1.15"
)
CRAWLER = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"

# Socket peers: the server does not trust them, so each is itself the client.
PEERS = ("127.23.45.67", "127.98.76.54", "127.201.3.4", "127.5.6.7")

# Public-looking addresses, sent as X-Forwarded-For by the trusted proxy. The last two IPv4
# bytes are never both zero, so every one differs from its truncated form. Every packed IPv4
# form has a byte outside printable ASCII, so it cannot turn up in text by chance; in the random
# bytes of the database (salts, visitor hashes: ~4,000 four-byte windows counting the WAL's
# copies) 60 of them match by chance about once in 20,000 runs.
FORWARDED_V4 = (
    *(f"81.2.69.{n}" for n in (5, 17, 42, 99, 160, 201, 250)),
    *(f"203.0.113.{n}" for n in (7, 33, 64, 128, 254)),
    *(f"198.51.100.{n}" for n in (9, 77, 123, 200)),
    "81.2.70.9",
    "81.2.1.2",
    "203.0.7.1",
    "198.51.0.66",
    "185.199.108.153",
    "93.184.216.34",
    "151.101.65.69",
    "45.33.32.156",
)
FORWARDED_V6 = (
    "2001:db8:85a3::8a2e:370:7334",
    "2001:db8:85a3:0:1:8a2e:370:7335",
    "2001:db8:85a3:42::1",
    "2001:db8:abcd:12::1",
    "2001:db8:0:1::ff",
    "2a00:1450:4001:81c::200e",
    "2606:4700:4700::1111",
    "2620:fe:0:1::9",
    "fd12:3456:789a:1::42",
    "2a02:8108:1c0:5a00:d1f3:2e4b:9a77:13c2",
    "2a01:4f8:c17:b8f::2",
    "2001:4860:4860::8888",
    "2403:5800:ab:cd:ef01:2345:6789:abcd",
    "2c0f:fb50:4003::5",
    "2800:3f0:4001:82f::200e",
    "2a0e:b107:1234:5678:9abc:def0:1234:5678",
    *(f"2001:db8:{n:x}:{n * 7:x}::{n * 13:x}" for n in range(21, 30)),
)


def truncate(address: str) -> str:
    """Zeef's documented truncation, computed here independently of server/privacy.py."""
    ip = _parse(address)
    prefix = 32 - 8 * MASK_BYTES if ip.version == 4 else IPV6_PREFIX[MASK_BYTES]
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)


def _parse(address: str) -> IPAddress:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        return ip.ipv4_mapped
    return ip


# -- the traffic ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Client:
    """Who sends: the socket peer, the X-Forwarded-For sent, and whom the server should see."""

    peer: str
    forwarded: str | None
    seen_as: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Forwarded-For": self.forwarded} if self.forwarded else {}


@dataclass(frozen=True)
class Request:
    """One request, the status and X-Zeef-Drop it gets, and whether it is a good event."""

    method: str
    path: str
    kwargs: dict[str, Any]
    status: int
    drop: str = ""
    good: bool = False

    @property
    def logged(self) -> bool:
        # Refusals are logged; accepted and dropped events are only counted.
        return self.status >= 400


def _event(
    body: bytes | str, user_agent: str = BROWSER, content_type: str = "text/plain"
) -> dict[str, Any]:
    content = body.encode() if isinstance(body, str) else body
    return {"content": content, "headers": {"Content-Type": content_type, "User-Agent": user_agent}}


def _pageview(n: int, domain: str = SITE, url: str | None = None) -> str:
    return json.dumps(
        {
            "n": "pageview",
            "u": url or f"https://{domain}/page/{n}?utm_source=newsletter",
            "d": domain,
            "r": "https://news.ycombinator.com/" if n % 3 == 0 else None,
        }
    )


def good(n: int) -> Request:
    return Request("POST", "/api/event", _event(_pageview(n)), 202, good=True)


# Every way to be refused, each a path through the server's error handling and access log.
BAD: tuple[Callable[[int], Request], ...] = (
    lambda n: Request("POST", "/api/event", _event('{"n": "pageview", "u": '), 400),
    lambda n: Request("POST", "/api/event", _event(b'{"n": "' + b"x" * 9000 + b'"}'), 413),
    lambda n: Request(
        "POST", "/api/event", _event(_pageview(n, "unknown.example")), 202, "unknown_site"
    ),
    lambda n: Request("POST", "/api/event", _event(_pageview(n), CRAWLER), 202, "bot"),
    lambda n: Request("GET", "/api/event", {"headers": {"User-Agent": BROWSER}}, 405),
    lambda n: Request("GET", f"/wp-login.php?user={n}", {}, 404),
    lambda n: Request(
        "POST",
        "/api/event",
        _event(_pageview(n), content_type="application/x-www-form-urlencoded"),
        415,
    ),
    lambda n: Request(
        "POST",
        "/api/event",
        _event(_pageview(n, url="https://evil.example/")),
        202,
        "domain_mismatch",
    ),
    lambda n: Request("POST", "/api/event", _event(_pageview(n, url="ftp://example.com/x")), 400),
    lambda n: Request("POST", "/api/event", _event('{"n": "pageview", "zz": 1}'), 400),
)


def forwarded_clients() -> list[Client]:
    clients: list[Client] = []
    for i, address in enumerate((*FORWARDED_V4, *FORWARDED_V6)):
        header = address
        if ":" in address and i % 4 == 1:
            header = ipaddress.IPv6Address(address).exploded.upper()
        clients.append(Client(PROXY, header, address))
    return [
        *clients,
        # The proxy appends itself: skipped as trusted, the hop before it is the visitor.
        Client(PROXY, "81.2.69.77, 127.0.0.1", "81.2.69.77"),
        # A visitor's forged hop in front: only the rightmost untrusted hop is believed.
        Client(PROXY, "198.51.100.31, 81.2.69.78", "81.2.69.78"),
        Client(PROXY, "::ffff:81.2.70.10", "81.2.70.10"),
        Client(PROXY, "2001:DB8:85A3:0:0:0:0:99", "2001:db8:85a3::99"),
        # A hop that is not an address: the chain is not believed past the proxy itself.
        Client(PROXY, "81.2.69.79:8080", PROXY),
        Client(PROXY, "unknown, 203.0.113.99", "203.0.113.99"),
    ]


def peer_clients() -> list[Client]:
    # The last ones forge X-Forwarded-For; from an untrusted peer it must be ignored.
    return [
        *(Client(peer, None, peer) for peer in PEERS),
        Client(PEERS[0], "81.2.69.80", PEERS[0]),
        Client(PEERS[1], "2001:db8:85a3:77::1", PEERS[1]),
    ]


def sent_addresses(clients: Iterable[Client]) -> set[str]:
    """Every address that went over the wire, as text in canonical form."""
    found: set[str] = set()
    for client in clients:
        found.add(client.peer)
        for hop in (client.forwarded or "").split(","):
            hop = hop.strip()
            # "a.b.c.d:port" is not an address, but it holds one.
            candidate = hop.split(":")[0] if hop.count(":") == 1 else hop
            try:
                found.add(str(_parse(candidate)))
            except ValueError:
                continue
    return found


# -- searching for addresses ----------------------------------------------------------------


def needles(address: str) -> list[tuple[str, bytes, bool]]:
    """(what, bytes, is_text) for every form of `address` worth searching for."""
    ip = ipaddress.ip_address(address)
    forms: list[tuple[str, bytes, bool]] = [("packed", ip.packed, False)]
    texts = {str(ip)}
    if isinstance(ip, ipaddress.IPv6Address):
        texts |= {ip.compressed, ip.exploded}
    else:
        texts.add(f"::ffff:{ip}")
    forms += [(f"text {text!r}", text.lower().encode(), True) for text in sorted(texts)]
    return forms


def leaks(haystack: bytes, addresses: Iterable[str]) -> list[str]:
    lowered = haystack.lower()
    return [
        f"{address} ({what})"
        for address in sorted(addresses)
        for what, needle, is_text in needles(address)
        if needle in (lowered if is_text else haystack)
    ]


def response_bytes(response: httpx.Response) -> bytes:
    head = b"".join(b"%s: %s\n" % pair for pair in response.headers.raw)
    return b"%d %s\n%s\n%s" % (
        response.status_code,
        response.reason_phrase.encode(),
        head,
        response.content,
    )


# `client "METHOD /path" status ...`: what follows the status may change, this may not.
ACCESS_LINE = re.compile(
    r'zeef\.access: (?P<client>\S+) "(?P<method>[A-Z]+) (?P<path>[^"\s]+)" (?P<status>\d{3})\b'
)


def access_lines(log: str) -> Counter[tuple[str, str, str, int]]:
    return Counter(
        (m["client"], m["method"], m["path"], int(m["status"])) for m in ACCESS_LINE.finditer(log)
    )


def raw_http(server: LiveServer, peer: str, data: bytes) -> bytes:
    """Send bytes that are not HTTP, so uvicorn's own error path answers; its reply."""
    assert server.port is not None
    with socket.create_connection(("127.0.0.1", server.port), 5, (peer, 0)) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def wait_for_pageviews(server: LiveServer, expected: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while (stored := server.stats(SITE)["pageviews"]) != expected:
        assert time.monotonic() < deadline, f"{stored} of {expected} pageviews flushed"
        time.sleep(0.1)


# -- the tests ------------------------------------------------------------------------------


# debug: the most talkative level Zeef allows.
@pytest.mark.parametrize("log_level", ["info", "debug"])
def test_no_full_address_reaches_disk_log_or_response(tmp_path: Path, log_level: str) -> None:
    clients = peer_clients() + forwarded_clients()
    checked = {
        address
        for address in sent_addresses(clients)
        if address != PROXY and truncate(address) != address
    }
    assert len(checked) >= 60, "the test must cover many addresses to mean anything"

    env = {
        "ZEEF_TRUSTED_PROXIES": PROXY,
        "ZEEF_IP_MASK_BYTES": str(MASK_BYTES),
        "ZEEF_FLUSH_INTERVAL": "0.2",
        "ZEEF_LOG_LEVEL": log_level,
    }
    responses: list[bytes] = []
    expected_lines: Counter[tuple[str, str, str, int]] = Counter()
    accepted = 0

    with LiveServer(tmp_path, env=env, sites=[SITE]) as server:
        http_clients: dict[str, httpx.Client] = {}
        try:
            for n, client in enumerate(clients):
                http = http_clients.get(client.peer)
                if http is None:
                    http = http_clients[client.peer] = server.client(local_address=client.peer)
                # Peers send every kind of bad request; forwarded visitors one or two each.
                bad = BAD if client.forwarded is None else (BAD[n % len(BAD)], BAD[n * 7 % 5])
                for request in (good(n), *(make(n) for make in bad)):
                    kwargs = dict(request.kwargs)
                    kwargs["headers"] = {**kwargs.get("headers", {}), **client.headers}
                    response = http.request(request.method, request.path, **kwargs)
                    responses.append(response_bytes(response))
                    assert response.status_code == request.status, (request, response.text)
                    assert response.headers.get("x-zeef-drop", "") == request.drop
                    if request.good:
                        assert response.text == ""
                        accepted += 1
                    if request.logged:
                        line = (
                            truncate(client.seen_as),
                            request.method,
                            request.path.split("?")[0],
                            request.status,
                        )
                        expected_lines[line] += 1
        finally:
            for http in http_clients.values():
                http.close()
        for peer in PEERS[:2]:
            reply = raw_http(server, peer, b"NOT HTTP AT ALL\r\n\r\n")
            assert reply.startswith(b"HTTP/1.1 400"), reply
            responses.append(reply)

        # The WAL holds the newest pages until a checkpoint: search it while it exists.
        wait_for_pageviews(server, accepted)
        while_running = {path.name: path.read_bytes() for path in server.database_files()}
    server.check_clean_exit()
    after_stop = {path.name: path.read_bytes() for path in server.database_files()}

    # The invariant.
    found: dict[str, list[str]] = {}
    for i, body in enumerate(responses):
        found[f"response {i}"] = leaks(body, checked)
    found["server log"] = leaks(server.log_bytes(), checked)
    assert any(name.endswith("-wal") for name in while_running), sorted(while_running)
    for when, files in (("while running", while_running), ("after stop", after_stop)):
        for name, data in files.items():
            found[f"{name} {when}"] = leaks(data, checked)
            # The schema keeps no address at all, not even a truncated one.
            truncated = sorted({truncate(a) for a in checked if truncate(a).encode() in data})
            found[f"{name} {when}, truncated"] = truncated
    found = {where: hits for where, hits in found.items() if hits}
    assert not found, "full addresses leaked:\n" + "\n".join(
        f"  {where}: {len(hits)}, e.g. {hits[:3]}" for where, hits in found.items()
    )

    # Not vacuous: the events were stored, and the refusals were logged, truncated.
    assert accepted == len(clients)
    assert server.stats(SITE)["pageviews"] == accepted
    log = server.log_text()
    assert re.search(r'81\.2\.0\.0 "POST /api/event" 400', log), server.log_tail()
    assert re.search(r'2001:db8:85a3:: "POST /api/event" 4\d\d', log), server.log_tail()
    assert re.search(r'127\.23\.0\.0 "GET /wp-login\.php" 404', log), server.log_tail()
    seen = access_lines(log)
    missing = expected_lines - seen
    assert not missing, f"access log lines missing: {sorted(missing)}"
    untruncated = sorted(
        line for line in seen if line[0] != "-" and truncate(line[0]) != str(_parse(line[0]))
    )
    assert not untruncated, f"access log clients not truncated: {untruncated}"
    assert "Invalid HTTP request received" in log


def test_trace_log_level_is_refused(tmp_path: Path) -> None:
    # At TRACE uvicorn logs "127.23.45.67:PORT - HTTP connection made" for every connection.
    server = LiveServer(tmp_path, env={"ZEEF_LOG_LEVEL": "trace"}, startup_timeout=10)
    with pytest.raises(LiveServerError, match="exited during startup"):
        server.start()
    assert server.returncode == 2
    assert "ZEEF_LOG_LEVEL" in server.log_text()


def test_6to4_address_is_truncated_like_the_ipv4_it_carries(tmp_path: Path) -> None:
    visitor = ipaddress.IPv4Address("81.2.69.6")
    sixtofour = ipaddress.IPv6Address((0x2002 << 112) | (int(visitor) << 80) | 1)
    env = {"ZEEF_TRUSTED_PROXIES": PROXY, "ZEEF_FLUSH_INTERVAL": "0.2"}
    with LiveServer(tmp_path, env=env, sites=[SITE]) as server:
        forwarded = {"X-Forwarded-For": str(sixtofour)}
        with server.client(local_address=PROXY, headers=forwarded) as http:
            assert http.get("/wp-login.php").status_code == 404
    server.check_clean_exit()
    log = server.log_text()
    assert ' "GET /wp-login.php" 404' in log
    # 2002:5102:4506:: is 81.2.69.6 written in hexadecimal.
    embedded = str(ipaddress.ip_network(f"{sixtofour}/48", strict=False).network_address)
    assert embedded not in log, f"{embedded} is {visitor}"
