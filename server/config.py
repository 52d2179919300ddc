"""Settings: the only reader of environment variables and of `zeef.toml`.

Precedence: environment (`ZEEF_*`) over `zeef.toml` (in the working directory, or the file named
by `ZEEF_CONFIG`) over defaults.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .retention import (
    DEFAULT_AUDIT_RETENTION,
    DEFAULT_CONSENT_PROOF,
    DEFAULT_RETENTION,
    Period,
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigError(ValueError):
    """A setting has a value Zeef cannot use; the message names the setting."""


@dataclass(frozen=True)
class Settings:
    database: Path = Path("zeef.sqlite3")
    # None: generated on first start and stored in the database (see storage.secret_key).
    secret_key: str | None = None
    trusted_proxies: tuple[Network, ...] = ()
    ip_mask_bytes: int = 2
    geoip_db: Path | None = None
    # Seconds between buffer flushes, and the batch size that forces an early one.
    flush_interval: float = 1.0
    flush_size: int = 2000
    # The most the buffer holds, queued or being written, before /api/event answers 503.
    # 100,000 tracker events are ~40 MiB (410 bytes each); the byte bound, counted as body
    # length + 512 an event, stops large bodies sooner (64 MiB is ~7,700 of 8 KiB).
    buffer_max_events: int = 100_000
    buffer_max_bytes: int = 64 * 1024 * 1024
    access_log: bool = True
    log_level: str = "info"
    # Stats API requests a key may make in an hour, as Plausible's default.
    api_rate_limit: int = 600
    # Seconds between rollup builds (sooner while someone reads reports a minute behind, or
    # asks for a new filter set): see docs/metrics.md, "How current".
    rollup_interval: int = 300
    # Where people reach this server, for links it prints or mails (set-password links):
    # the address behind the operator's proxy, e.g. https://stats.example.com.
    public_url: str = "http://localhost:8000"
    # Seconds a login session lives without a request: a working day.
    session_idle: int = 8 * 3600
    # The operator's mail server for reports and alerts (server/mail/smtp.py):
    # smtp://user:pass@host:587 (STARTTLS) or smtps://user:pass@host:465 (TLS from the start).
    # None: no mail is sent, and the scheduler does not run.
    smtp_url: str | None = None
    # The From: of those mails; None: "Zeef <zeef@HOST>", HOST that of public_url.
    mail_from: str | None = None
    # How long data is kept where a customer or site sets nothing (docs/retention.md).
    retention: Period = DEFAULT_RETENTION
    # Consent records: the consent's lifetime plus this, to prove a consent after it ran out.
    consent_proof: Period = DEFAULT_CONSENT_PROOF
    audit_retention: Period = DEFAULT_AUDIT_RETENTION
    # Seconds between two runs of the purge job inside the server (at least hourly).
    purge_interval: int = 3600
    # Where the data is kept, in words, for the privacy statement: "our own servers in the
    # Netherlands". None: the statement says the operator's own servers, and `zeef audit` asks.
    data_location: str | None = None


# Each setting: (environment variable, toml key, parser).
def _parse_bool(value: str) -> bool:
    lowered = str(value).strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _parse_proxies(value: str | list[str]) -> tuple[Network, ...]:
    items = value if isinstance(value, list) else str(value).split(",")
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items if item.strip())


def _parse_level(value: str) -> str:
    # No "trace": at that level uvicorn prints every client's full address.
    level = str(value).strip().lower()
    if level not in ("debug", "info", "warning", "error"):
        raise ValueError("must be debug, info, warning or error")
    return level


def _parse_positive(value: str | int) -> int:
    number = int(value)
    if number < 1:
        raise ValueError("must be 1 or more")
    return number


def _parse_hourly(value: str | int) -> int:
    number = int(value)
    if not 60 <= number <= 3600:
        raise ValueError("must be 60 to 3600 seconds: the purge runs at least hourly")
    return number


def _parse_mask(value: str | int) -> int:
    number = int(value)
    if number not in (1, 2, 3):
        raise ValueError("must be 1, 2 or 3")
    return number


def _parse_url(value: str) -> str:
    url = str(value).strip().rstrip("/")
    if not (url.startswith("https://") or url.startswith("http://")) or " " in url:
        raise ValueError("must be an http:// or https:// address, e.g. https://stats.example.com")
    return url


def _parse_smtp_url(value: str) -> str | None:
    # Checked here, so a typo stops the server at start and not at the first Monday's report.
    from .mail.smtp import parse_smtp_url

    text = str(value).strip()
    if not text:
        return None
    parse_smtp_url(text)
    return text


def _parse_mail_from(value: str) -> str | None:
    from email.headerregistry import Address
    from email.utils import parseaddr

    text = str(value).strip()
    if not text:
        return None
    name, address = parseaddr(text)
    if "@" not in address or any(c in text for c in "\r\n"):
        raise ValueError(
            "must be an address, e.g. reports@example.com or Zeef <reports@example.com>"
        )
    Address(name, addr_spec=address)  # refuses what a From: header cannot carry
    return text


def _parse_database(value: str) -> Path:
    # A path or a sqlite:/// URL; the storage package says which URLs it takes.
    from .storage import database_path

    return database_path(str(value))


_FIELDS: dict[str, tuple[str, Any]] = {
    "database": ("ZEEF_DATABASE", _parse_database),
    "secret_key": ("ZEEF_SECRET_KEY", str),
    "trusted_proxies": ("ZEEF_TRUSTED_PROXIES", _parse_proxies),
    "ip_mask_bytes": ("ZEEF_IP_MASK_BYTES", _parse_mask),
    "geoip_db": ("ZEEF_GEOIP_DB", lambda v: Path(v) if str(v) else None),
    "flush_interval": ("ZEEF_FLUSH_INTERVAL", float),
    "flush_size": ("ZEEF_FLUSH_SIZE", int),
    "buffer_max_events": ("ZEEF_BUFFER_MAX_EVENTS", _parse_positive),
    "buffer_max_bytes": ("ZEEF_BUFFER_MAX_BYTES", _parse_positive),
    "access_log": ("ZEEF_ACCESS_LOG", _parse_bool),
    "log_level": ("ZEEF_LOG_LEVEL", _parse_level),
    "api_rate_limit": ("ZEEF_API_RATE_LIMIT", _parse_positive),
    "rollup_interval": ("ZEEF_ROLLUP_INTERVAL", _parse_positive),
    "public_url": ("ZEEF_PUBLIC_URL", _parse_url),
    "session_idle": ("ZEEF_SESSION_IDLE", _parse_positive),
    "smtp_url": ("ZEEF_SMTP_URL", _parse_smtp_url),
    "mail_from": ("ZEEF_MAIL_FROM", _parse_mail_from),
    "retention": ("ZEEF_RETENTION", Period.parse),
    "consent_proof": ("ZEEF_CONSENT_PROOF", Period.parse),
    "audit_retention": ("ZEEF_AUDIT_RETENTION", Period.parse),
    "purge_interval": ("ZEEF_PURGE_INTERVAL", _parse_hourly),
    "data_location": ("ZEEF_DATA_LOCATION", lambda v: str(v).strip() or None),
}


def load_settings(
    environ: Mapping[str, str] | None = None, config_file: Path | None = None
) -> Settings:
    """Build Settings from the environment and an optional TOML file."""
    env = os.environ if environ is None else environ
    path = config_file or Path(env.get("ZEEF_CONFIG", "zeef.toml"))
    from_file: dict[str, Any] = {}
    if path.is_file():
        with path.open("rb") as fh:
            from_file = tomllib.load(fh)
        unknown = set(from_file) - set(_FIELDS)
        if unknown:
            raise ConfigError(f"{path}: unknown settings {sorted(unknown)}")
    values: dict[str, Any] = {}
    for name, (variable, parse) in _FIELDS.items():
        raw = env.get(variable, from_file.get(name))
        if raw is None:
            continue
        try:
            values[name] = parse(raw)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{variable} ({name}): {exc}") from None
    return Settings(**values)
