"""HTTPS: `zeef serve --ssl-certfile --ssl-keyfile` over real TLS, Strict-Transport-Security only
for requests that came over HTTPS (to us, or to a trusted proxy that says so), and the Caddy
set-up in docker/."""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from server.headers import is_https

from .conftest import Zeef
from .live import ROOT, _child_env, _free_port
from .test_cli import zeef as run_zeef

HSTS = "strict-transport-security"
ONE_YEAR = "max-age=31536000"
TRUSTED = (ipaddress.ip_network("10.0.0.1/32"),)


def self_signed(directory: Path, name: str = "zeef") -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost and its key, as PEM files in `directory`.

    With `cryptography` when it is there (it is no test dependency of ours, only often
    installed), else with the openssl command.
    """
    certfile, keyfile = directory / f"{name}.crt", directory / f"{name}.key"
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
             "-keyout", str(keyfile), "-out", str(certfile)],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        return certfile, keyfile
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        # Its own trust anchor: OpenSSL's strict checks want it marked as a CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    certfile.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certfile, keyfile


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The real `zeef serve --ssl-certfile --ssl-keyfile` on a free port: its URL and cert."""
    certfile, keyfile = self_signed(tmp_path)
    port = _free_port("127.0.0.1")
    log = (tmp_path / "zeef.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--port", str(port),
         "--ssl-certfile", str(certfile), "--ssl-keyfile", str(keyfile)],
        env=_child_env(tmp_path / "zeef.sqlite3", {}), cwd=tmp_path,
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        yield f"https://127.0.0.1:{port}", certfile
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def verifying(certfile: Path) -> ssl.SSLContext:
    # httpx 0.28 deprecates verify=<path>, and warnings are errors here.
    return ssl.create_default_context(cafile=str(certfile))


def test_serve_speaks_https_and_sends_hsts(https_server: tuple[str, Path]) -> None:
    url, certfile = https_server
    deadline = time.monotonic() + 20
    with httpx.Client(base_url=url, verify=verifying(certfile), trust_env=False) as http:
        while True:
            try:
                response = http.get("/healthz")
                break
            except httpx.ConnectError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert response.status_code == 200
        assert response.headers.get_list(HSTS) == [ONE_YEAR]
        assert response.headers["x-content-type-options"] == "nosniff"
    # The certificate is the one we gave: a client that trusts only another refuses it.
    other, _ = self_signed(certfile.parent, "other")
    with (
        httpx.Client(base_url=url, verify=verifying(other), trust_env=False) as http,
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        http.get("/healthz")


async def test_plain_http_gets_no_hsts(zeef: Zeef) -> None:
    for path in ("/healthz", "/tracker.js", "/nowhere"):
        response = await zeef.client.get(path)
        assert HSTS not in response.headers, path


@pytest.mark.parametrize(
    ("proto", "hsts"),
    [("https", True), ("HTTPS", True), ("https, http", True), ("http", False),
     ("http, https", False), ("", False), ("httpsx", False)],
    ids=["https", "upper", "first-https", "http", "first-http", "empty", "not-https"],
)  # fmt: skip
async def test_x_forwarded_proto_from_the_trusted_proxy(zeef: Zeef, proto: str, hsts: bool) -> None:
    # The conftest's ASGI transport is the peer 10.0.0.1, which the settings trust.
    for path in ("/healthz", "/nowhere"):
        response = await zeef.client.get(path, headers={"x-forwarded-proto": proto})
        assert (response.headers.get_list(HSTS) == [ONE_YEAR]) is hsts, path
        if not hsts:
            assert HSTS not in response.headers


async def test_x_forwarded_proto_from_anyone_else_is_ignored(zeef: Zeef) -> None:
    transport = httpx.ASGITransport(app=zeef.app, client=("81.2.69.142", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://zeef.test") as client:
        response = await client.get("/healthz", headers={"x-forwarded-proto": "https"})
    assert response.status_code == 200
    assert HSTS not in response.headers


@pytest.mark.parametrize(
    ("scope", "trusted", "expected"),
    [
        ({"scheme": "https", "client": ("81.2.69.142", 1), "headers": []}, (), True),
        ({"scheme": "http", "client": ("10.0.0.1", 1),
          "headers": [(b"x-forwarded-proto", b"https")]}, TRUSTED, True),
        ({"scheme": "http", "client": ("10.0.0.2", 1),
          "headers": [(b"x-forwarded-proto", b"https")]}, TRUSTED, False),
        ({"scheme": "http", "client": ("10.0.0.1", 1),
          "headers": [(b"x-forwarded-proto", b"https")]}, (), False),
        ({"scheme": "http", "client": None,
          "headers": [(b"x-forwarded-proto", b"https")]}, TRUSTED, False),
        ({"scheme": "http", "client": ("not an address", 1),
          "headers": [(b"x-forwarded-proto", b"https")]}, TRUSTED, False),
    ],
    ids=["tls-to-us", "trusted-proxy", "untrusted-peer", "no-proxies", "no-peer", "bad-peer"],
)  # fmt: skip
def test_is_https(scope: dict[str, object], trusted: tuple[object, ...], expected: bool) -> None:
    # The session cookie's Secure flag will ask this same question.
    assert is_https({"type": "http", **scope}, trusted) is expected  # type: ignore[arg-type]


# Not an address: were the flags not refused, uvicorn would fail to bind (exit 1) at once
# instead of serving until the timeout.
NOWHERE = "256.0.0.1"


@pytest.mark.parametrize(
    ("given", "missing"),
    [("--ssl-certfile", "--ssl-keyfile"), ("--ssl-keyfile", "--ssl-certfile")],
    ids=["cert-only", "key-only"],
)
def test_one_tls_flag_without_the_other_is_refused(
    tmp_path: Path, given: str, missing: str
) -> None:
    certfile, _ = self_signed(tmp_path)
    result = run_zeef(tmp_path, "serve", "--host", NOWHERE, given, str(certfile))
    assert result.returncode == 2
    assert missing in result.stderr
    assert "Traceback" not in result.stderr


def test_unusable_tls_files_are_named_without_a_traceback(tmp_path: Path) -> None:
    certfile, keyfile = self_signed(tmp_path)
    other_cert, _ = self_signed(tmp_path, "other")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    cases = [
        (str(tmp_path / "absent.crt"), str(keyfile), "absent.crt"),
        (str(certfile), str(tmp_path / "absent.key"), "absent.key"),
        (str(junk), str(keyfile), "junk.pem"),
        (str(other_cert), str(keyfile), "other.crt"),  # a key that is not the cert's
    ]
    for cert, key, named in cases:
        result = run_zeef(tmp_path, "serve", "--host", NOWHERE,
                          "--ssl-certfile", cert, "--ssl-keyfile", key)  # fmt: skip
        assert result.returncode == 2, (named, result.stderr)
        assert named in result.stderr
        assert "Traceback" not in result.stderr


# -- docker/ ---------------------------------------------------------------------------------

DOCKER = ROOT / "docker"


def test_compose_has_caddy_under_the_tls_profile_and_trusts_only_it() -> None:
    """`docker compose config` would check more, but there is no Docker here: the file is
    read as YAML, and the addresses in it checked against each other."""
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    caddy = compose["services"]["caddy"]
    assert caddy["profiles"] == ["tls"]
    assert "profiles" not in compose["services"]["zeef"]
    assert "./Caddyfile:/etc/caddy/Caddyfile:ro" in caddy["volumes"]
    assert "ZEEF_DOMAIN" in caddy["environment"]
    address = ipaddress.ip_address(caddy["networks"]["default"]["ipv4_address"])
    subnet = ipaddress.ip_network(compose["networks"]["default"]["ipam"]["config"][0]["subnet"])
    trusted = compose["services"]["zeef"]["environment"]["ZEEF_TRUSTED_PROXIES"]
    networks = [ipaddress.ip_network(item) for item in trusted.split(",")]
    assert address in subnet
    assert any(address in network for network in networks), "Caddy's headers not believed"
    # Not the gateway: that is the peer of anything reaching the published port from the host.
    assert not any(next(subnet.hosts()) in network for network in networks)


def test_caddyfile_names_the_domain_variable_and_keeps_no_access_log() -> None:
    caddyfile = (DOCKER / "Caddyfile").read_text()
    assert "{$ZEEF_DOMAIN}" in caddyfile
    assert "reverse_proxy zeef:8000" in caddyfile
    site = caddyfile[caddyfile.index("{$ZEEF_DOMAIN}") :]
    code = [line.split("#", 1)[0] for line in site.splitlines()]
    assert not any(line.split()[:1] == ["log"] for line in code), "an access log"
    assert "request>remote_ip delete" in caddyfile


@pytest.mark.skipif(shutil.which("caddy") is None, reason="caddy is not installed (apt-get "
                    "install caddy; the README's test command does)")  # fmt: skip
def test_caddyfile_is_valid(tmp_path: Path) -> None:
    env = {**os.environ, "ZEEF_DOMAIN": "analytics.example.com",
           "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}  # fmt: skip
    result = subprocess.run(
        ["caddy", "validate", "--config", str(DOCKER / "Caddyfile"), "--adapter", "caddyfile"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Valid configuration" in result.stdout + result.stderr


def test_ci_runs_the_readmes_test_command_with_caddy() -> None:
    readme = (ROOT / "README.md").read_text().splitlines()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    command = next(line for line in readme if line.startswith("apt-get update && "))
    assert command in ci
    assert "apt-get install -y chromium caddy " in command
