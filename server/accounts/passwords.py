"""Passwords: argon2id hashes, and the policy a new password must meet (NIST SP 800-63B-4).

Callers ask `password_problem` before `hash_password` whenever a password is chosen or changed;
logins only call `verify_password` (and `needs_rehash`, to upgrade an old hash once it matched).
"""

from __future__ import annotations

import functools
import string
import unicodedata
from importlib import resources

from argon2 import PasswordHasher, profiles
from argon2.exceptions import Argon2Error

# SP 800-63B-4 sec. 3.1.1.2 (Password Verifiers), item 1: passwords used as a single-factor
# authenticator SHALL be at least 15 characters (8 only when always part of multi-factor
# authentication). Zeef's logins are single-factor. Item 4: each Unicode code point counts as
# one character, so lengths here are code points after normalisation.
MIN_LENGTH = 15
# Item 2: SHOULD permit at least 64. 1024 leaves room for any passphrase or password manager
# and bounds the work one login request can ask for.
MAX_LENGTH = 1024

# argon2-cffi's RFC 9106 "low memory" profile (also its defaults): argon2id, t=3, m=64 MiB,
# p=4, 16-byte salt, 32-byte hash. Named here rather than taken as defaults so a new
# argon2-cffi changes our parameters only when we say so; when we do, `needs_rehash` tells the
# login path to upgrade each hash as its owner next signs in.
# Measured on the 2-core dev machine under its usual load: 0.19-0.34 s per hash (10 runs),
# 0.12-0.21 s per verification.
# NOTE: each hash or verification holds 64 MiB while it runs, so ten logins at once take 640 MiB;
# a login route should run them off the event loop and bound how many run together.
_HASHER = PasswordHasher.from_parameters(profiles.RFC_9106_LOW_MEMORY)

# What people wrap a common password in ("Password123!", "!!monkey!!"): stripped before the
# blocklist is asked again.
_FILLER = string.digits + string.punctuation + string.whitespace
# A unit this short, repeated ("aaaa…", "abcabc…"), is guessed early whatever it is.
_SHORT_UNIT = 3
# Runs people type as a "password" ("abcdef…", "123456…", "qwertyuiop"): the blocklist leaves
# them out on purpose (its makers left them to zxcvbn's pattern matching), so they are checked
# here, forwards and backwards.
_FORWARD_RUNS = (
    "abcdefghijklmnopqrstuvwxyz",
    "01234567890",
    "qwertyuiop",
    "asdfghjkl",
    "zxcvbnm",
)
_RUNS = (*_FORWARD_RUNS, *(run[::-1] for run in _FORWARD_RUNS))
# Shorter pieces of a run ("ab", "90") occur in ordinary words; three in a row do not make one.
_MIN_RUN = 3
# Parts of an email address shorter than this ("jo", "de") would strike too much of a password.
_MIN_CONTEXT_WORD = 3

_TOO_SHORT = (
    f"Use at least {MIN_LENGTH} characters; a few words with spaces between them make a long "
    "password easy to remember."
)
_TOO_LONG = f"Use at most {MAX_LENGTH} characters; shorten the password."
_CONTROL = (
    "Leave out invisible control characters such as tabs and line breaks; letters, digits, "
    "symbols, emoji and spaces are all fine."
)
_CONTEXT = (
    "Don't build the password from your email address or the name Zeef; choose words that have "
    "nothing to do with this account."
)
_COMMON = (
    "This is one of the most common passwords, which attackers try first; choose another, "
    "such as a few unrelated words."
)
_PADDED = (
    "This is a common password with only spaces, digits or symbols added, which attackers try "
    "early; choose another, such as a few unrelated words."
)
_SEQUENCE = (
    "This is only characters in order or keys side by side, which attackers try early; use a "
    "few words instead."
)
_REPEATED = (
    "This repeats one word or a few characters, which attackers try early; use a few different "
    "words instead."
)


def hash_password(password: str) -> str:
    """The argon2id hash of `password` as a PHC string ("$argon2id$v=19$m=…").

    Raises ValueError for a password that `password_problem` would call too long or that holds
    a lone surrogate (it cannot be encoded); ask `password_problem` first.
    """
    normal = _normalise(password)
    if len(normal) > MAX_LENGTH:
        # `verify_password` refuses such passwords, so storing one would lock its owner out.
        raise ValueError(_TOO_LONG)
    try:
        return _HASHER.hash(normal)
    except UnicodeEncodeError as error:
        raise ValueError(_CONTROL) from error


def verify_password(stored: str, password: str) -> bool:
    """Whether `password` matches the hash `stored`; False, never an exception, for a wrong
    password or a hash that is garbled, empty or not argon2."""
    normal = _normalise(password)
    if len(normal) > MAX_LENGTH:
        # No such password was ever accepted: refuse before spending a hash on it.
        return False
    try:
        return _HASHER.verify(stored, normal)
    except (Argon2Error, ValueError):
        # Argon2Error: a mismatch, or parameters the library will not run (e.g. m=1).
        # ValueError: InvalidHashError, and UnicodeEncodeError for non-ASCII in `stored` or a
        # lone surrogate in `password`.
        return False


def needs_rehash(stored: str) -> bool:
    """Whether `stored` was made with other parameters than `hash_password` uses today (then
    hash the password again after it verified). True for a hash that cannot be read."""
    try:
        return _HASHER.check_needs_rehash(stored)
    except ValueError:
        return True


def password_problem(password: str, email: str | None = None) -> str | None:
    """None if `password` may be chosen, else one sentence saying what is wrong and what to do.

    The rules of SP 800-63B-4 sec. 3.1.1.2: a length between MIN_LENGTH and MAX_LENGTH, any
    printable Unicode and spaces, no composition rules (no "one digit, one capital"), and no
    commonly used or context-specific password. `email` is the account's address, if known.
    """
    normal = _normalise(password)
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in normal):
        # Cc: control characters (a pasted tab or newline no login form can send back);
        # Cs: lone surrogates, which no encoding can hash. Cf (format) stays allowed: emoji
        # sequences are joined with U+200D.
        return _CONTROL
    if len(normal) < MIN_LENGTH:
        return _TOO_SHORT
    if len(normal) > MAX_LENGTH:
        return _TOO_LONG
    key = normal.casefold()
    residue = key
    for word in sorted(_context_words(email), key=len, reverse=True):
        residue = residue.replace(word, "")
    # A context word adds next to nothing for an attacker who knows whose account it is, so
    # whatever is left once they are struck out must pass on its own.
    if residue != key and (len(residue) < MIN_LENGTH or _commonness(residue) is not None):
        return _CONTEXT
    if _is_runs("".join(key.split())):
        return _SEQUENCE
    return _commonness(key)


def _normalise(password: str) -> str:
    # NFKC before hashing and before every check, as NIST advises for Unicode passwords (NFKC
    # or NFKD, "applied before hashing"; the text read was 800-63B rev. 3 sec. 5.1.1.2): the
    # same password typed with another keyboard or input method (full-width letters, the "fi"
    # ligature U+FB01) stays the same password.
    return unicodedata.normalize("NFKC", password)


def _commonness(key: str) -> str | None:
    """Which blocklist rule the casefolded `key` breaks, as its message, or None."""
    blocklist = _common_passwords()
    core = key.strip(_FILLER)
    padded = False
    for candidate in dict.fromkeys((key, "".join(key.split()), core)):
        if not candidate:
            continue
        if candidate in blocklist:
            if candidate == key:
                return _COMMON
            padded = True
        unit = _repeated_unit(candidate)
        if unit is not None and (
            len(unit) <= _SHORT_UNIT or unit in blocklist or unit.strip(_FILLER) in blocklist
        ):
            return _REPEATED
    return _PADDED if padded else None


def _repeated_unit(text: str) -> str | None:
    """The shortest string that `text` is two or more copies of, or None."""
    # The first place `text` occurs again inside itself doubled is its period.
    period = (text + text).find(text, 1)
    return text[:period] if period < len(text) else None


def _is_runs(text: str) -> bool:
    """Whether `text` is made only of pieces of `_RUNS`, each at least `_MIN_RUN` long."""
    start = 0
    while start < len(text):
        longest = 0
        for run in _RUNS:
            size = 0
            begin = run.find(text[start])
            while (
                begin >= 0
                and begin + size < len(run)
                and start + size < len(text)
                and run[begin + size] == text[start + size]
            ):
                size += 1
            longest = max(longest, size)
        if longest < _MIN_RUN:
            return False
        start += longest
    return bool(text)


def _context_words(email: str | None) -> set[str]:
    words = {"zeef"}
    if not email:
        return words
    address = _normalise(email).strip().casefold()
    local, _, domain = address.rpartition("@")
    words.update((address, local, domain))
    for separator in "._+-":
        local = local.replace(separator, " ")
    words.update(local.split())
    words.add(domain.split(".")[0])
    return {word for word in words if len(word) >= _MIN_CONTEXT_WORD}


@functools.cache
def _common_passwords() -> frozenset[str]:
    # Read on first use, not at import: 49,232 lines, ~30 ms and a few MB that only the
    # routes choosing a password need. Provenance and licence: the file's own header.
    text = resources.files(__package__).joinpath("common-passwords.txt").read_text("utf-8")
    return frozenset(
        line.casefold() for line in text.splitlines() if line and not line.startswith("#")
    )
