"""Password hashing and the new-password policy (server/accounts/passwords.py).

Each argon2id hash costs ~0.2-0.3 s here, so the tests share one real hash where they can.
"""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from server.accounts.passwords import (
    MAX_LENGTH,
    MIN_LENGTH,
    hash_password,
    needs_rehash,
    password_problem,
    verify_password,
)

PASSPHRASE = "maple river cup"  # 15 characters, no word of it on the blocklist


def full_width(text: str) -> str:
    """`text` in full-width forms (U+FF01-FF5E), as an East Asian input method may type it."""
    return "".join(chr(ord(char) + 0xFEE0) if "!" <= char <= "~" else char for char in text)


@pytest.fixture(scope="module")
def stored() -> str:
    return hash_password(PASSPHRASE)


def test_hash_is_argon2id_phc_and_salted(stored: str) -> None:
    assert stored.startswith("$argon2id$v=19$")
    assert PASSPHRASE not in stored


def test_round_trip(stored: str) -> None:
    assert verify_password(stored, PASSPHRASE)


@pytest.mark.parametrize(
    "attempt",
    ["maple river cuP", "maple river cup ", "maple river", "", "x" * (MAX_LENGTH + 1), "\ud800"],
    ids=["one-letter", "trailing-space", "prefix", "empty", "too-long", "lone-surrogate"],
)
def test_wrong_password_is_false(stored: str, attempt: str) -> None:
    assert verify_password(stored, attempt) is False


def test_garbled_hashes_are_false_not_errors(stored: str) -> None:
    garbled = [
        "",
        "not a hash",
        "$argon2id$",
        stored[:-4],
        stored + "é",
        stored.replace("m=65536", "m=1"),
        stored.replace("t=3", "t=0"),
        "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
    ]
    for bad in garbled:
        assert verify_password(bad, PASSPHRASE) is False, bad
        assert needs_rehash(bad) is True, bad


def test_current_hash_needs_no_rehash(stored: str) -> None:
    assert needs_rehash(stored) is False


def test_hash_with_old_parameters_verifies_and_needs_rehash() -> None:
    # What a hash from weaker, older settings looks like (and cheap to make).
    old = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSPHRASE)
    assert verify_password(old, PASSPHRASE)
    assert needs_rehash(old)


def test_compatibility_forms_verify_as_their_nfkc_form() -> None:
    # Full-width letters and the "fi" ligature U+FB01 (some autocorrects type it).
    stored = hash_password("fine maple river")
    assert verify_password(stored, "\ufb01ne " + full_width("maple") + " river")
    assert not verify_password(stored, "fine maple rive")


def test_hash_refuses_what_verify_would_refuse() -> None:
    with pytest.raises(ValueError):
        hash_password("x" * (MAX_LENGTH + 1))


def test_limits() -> None:
    assert MIN_LENGTH == 15
    assert MAX_LENGTH >= 64


# (password, email, a phrase the message must contain); None: acceptable.
POLICY = [
    (PASSPHRASE, None, None),
    ("maple river up", None, "at least 15 characters"),
    ("x" * 1023 + "y", None, None),
    ("z" * 1024 + "y", None, "at most 1024"),
    ("correct horse battery staple", "jane.doe@example.com", None),
    ("Grüße aus Köln am Rhein", None, None),
    ("👨‍👩‍👧 family of three at home", None, None),
    ("tab\tbetween two words here", None, "control characters"),
    ("\ud800" * 16, None, "control characters"),
    ("passwordpassword", None, "most common passwords"),
    ("PasswordPassword", None, "most common passwords"),
    ("Password123456789!", None, "digits or symbols added"),
    ("!!!jennifer2024!!!", None, "digits or symbols added"),
    (full_width("password123456789"), None, "digits or symbols added"),
    ("dragon dragon dragon", None, "repeats"),
    ("monkeymonkeymonkey1", None, "repeats"),
    ("aaaaaaaaaaaaaaaa", None, "repeats"),
    ("                ", None, "repeats"),
    ("123456789012345", None, "characters in order"),
    ("qwertyuiopasdfghjkl", None, "keys side by side"),
    ("jane.doe@example.com", "jane.doe@example.com", "email address"),
    ("Jane.Doe@Example.com!", "jane.doe@example.com", "email address"),
    ("janedoe12345678901", "jane.doe@example.com", "email address"),
    ("doe jane example 2025", "jane.doe@example.com", "email address"),
    ("zeef1234567890123", None, "Zeef"),
    ("zeef is how I count visitors", None, None),
]


@pytest.mark.parametrize(
    ("password", "email", "phrase"),
    POLICY,
    ids=[
        "15-char-passphrase",
        "14-chars",
        "1024-chars",
        "1025-chars",
        "unrelated-to-email",
        "non-ascii-letters",
        "emoji-zwj-sequence",
        "control-character",
        "lone-surrogates",
        "common",
        "common-any-case",
        "common-plus-digits",
        "common-wrapped-in-symbols",
        "common-full-width",
        "common-word-repeated",
        "common-word-repeated-plus-digit",
        "one-character-repeated",
        "only-spaces",
        "digit-sequence",
        "keyboard-rows",
        "the-email",
        "the-email-any-case-plus-symbol",
        "email-local-part-plus-digits",
        "email-parts-plus-digits",
        "service-name-plus-digits",
        "service-name-inside-a-passphrase",
    ],
)
def test_policy(password: str, email: str | None, phrase: str | None) -> None:
    problem = password_problem(password, email)
    if phrase is None:
        assert problem is None
    else:
        assert problem is not None
        assert phrase in problem
        # One sentence: a capital, a full stop at the end only, and something to do.
        assert problem[0].isupper() and problem.endswith(".") and problem.count(". ") == 0


def test_long_blocklisted_entries_are_rejected() -> None:
    # The list's few entries of MIN_LENGTH or more are the ones the length rule lets through.
    for entry in ["passwordpassword", "1qaz2wsx3edc4rfv", "q1w2e3r4t5y6u7i8"]:
        assert password_problem(entry) is not None, entry
