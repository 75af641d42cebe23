"""API keys and scopes: what a key looks like, how it is stored, what it allows.

A key is ``ordk_<id>_<secret>``: the prefix makes a leaked key easy to recognise (secret
scanners, logs), the id names the key in listings and revocation without revealing it, and the
secret is 256 random bits. Only the SHA-256 of the whole key is stored, so a stolen database
yields no usable key; a 256-bit secret needs no slow hash (there is nothing to brute-force).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from ordtool.errors import InvalidInput

KEY_PREFIX = "ordk"
ADMIN = "admin"
# admin grants every other scope.
SCOPES: tuple[str, ...] = (
    "orders:read",
    "orders:write",
    "customers:read",
    "customers:write",
    ADMIN,
)
MAX_NAME_LENGTH = 100
# token_urlsafe(32) gives 43 characters of [A-Za-z0-9_-].
_KEY = re.compile(rf"{KEY_PREFIX}_([0-9a-f]{{16}})_([A-Za-z0-9_\-]{{43}})")


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key: everything but the secret."""

    id: str
    name: str
    key_hash: str
    scopes: frozenset[str]
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key just made: ``token`` is shown to its owner once and never stored."""

    token: str
    key: ApiKey


def generate_key(name: str, scopes: frozenset[str], now: datetime) -> NewKey:
    key_id = secrets.token_hex(8)
    token = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    return NewKey(token, ApiKey(key_id, check_name(name), hash_key(token), scopes, now))


def hash_key(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def key_id_of(token: str) -> str | None:
    """The id inside a well-formed key, or None for anything that is not one of our keys."""
    match = _KEY.fullmatch(token)
    return match.group(1) if match else None


def looks_like_key(token: str) -> bool:
    return token.startswith(f"{KEY_PREFIX}_")


def check_name(name: str) -> str:
    text = name.strip()
    if not text or len(text) > MAX_NAME_LENGTH or not text.isprintable():
        raise InvalidInput(
            f"a key name must be 1-{MAX_NAME_LENGTH} printable characters, got {name!r}",
            hint="name it after who uses it, e.g. --name billing-service",
        )
    return text


def parse_scopes(values: Iterable[str]) -> frozenset[str]:
    """Scopes from user input (each value may hold several, space- or comma-separated)."""
    scopes = frozenset(part for value in values for part in re.split(r"[\s,]+", value) if part)
    unknown = sorted(scopes - set(SCOPES))
    if unknown or not scopes:
        what = f"unknown scope {', '.join(unknown)}" if unknown else "a key needs a scope"
        raise InvalidInput(what, hint=f"use one or more of {', '.join(SCOPES)}")
    return scopes


def known_scopes(claim: str) -> frozenset[str]:
    """Scopes from a space-separated claim (RFC 8693 ``scope``); unknown ones are ignored."""
    return frozenset(claim.split()) & frozenset(SCOPES)


def grants(scopes: frozenset[str], wanted: str) -> bool:
    return wanted in scopes or ADMIN in scopes


def scopes_text(scopes: Iterable[str]) -> str:
    """Scopes in the one stable order (SCOPES), space-separated, as stored."""
    chosen = set(scopes)
    return " ".join(scope for scope in SCOPES if scope in chosen)
