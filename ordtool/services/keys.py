"""API key use cases: create, list, revoke, verify, and the key files made on first start.

Each service checks keys against its own database, so a key is written to every store it
should work on (the CLI passes both), under one id and one hash.
"""

from __future__ import annotations

import hmac
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pydantic import SecretStr

from ordtool.domain.clock import utc_now
from ordtool.domain.keys import ADMIN, ApiKey, generate_key, hash_key, key_id_of
from ordtool.errors import ConfigurationError, NotFound
from ordtool.services.ports import ApiKeyStore


def create_key(stores: Sequence[ApiKeyStore], name: str, scopes: frozenset[str]) -> tuple[
    ApiKey, str
]:
    """Make a key and store its hash everywhere; returns the key and its token (show once).

    If one store fails, the key is removed from those that took it: a key that works on only
    some services would be a puzzle for whoever holds it.
    """
    new = generate_key(name, scopes, utc_now())
    done: list[ApiKeyStore] = []
    try:
        for store in stores:
            store.add(new.key)
            done.append(store)
    except BaseException:
        for store in done:
            store.delete(new.key.id)
        raise
    return new.key, new.token


@dataclass(frozen=True, slots=True)
class KeyListing:
    key: ApiKey
    active_in: int  # how many of the stores accept it


def list_keys(stores: Sequence[ApiKeyStore]) -> list[KeyListing]:
    """Every key any store knows, oldest first; no secret is stored, so none can leak here."""
    seen: dict[str, ApiKey] = {}
    active: dict[str, int] = {}
    for store in stores:
        for key in store.list():
            seen.setdefault(key.id, key)
            if key.active:
                active[key.id] = active.get(key.id, 0) + 1
            else:
                seen[key.id] = key  # show the revocation time
    ordered = sorted(seen.values(), key=lambda k: (k.created_at, k.id))
    return [KeyListing(key, active.get(key.id, 0)) for key in ordered]


def revoke_key(stores: Sequence[ApiKeyStore], key_id: str) -> None:
    now = utc_now()
    found = [store.revoke(key_id, now) for store in stores]
    if not any(found):
        raise NotFound(f"no API key with id {key_id}", hint="list them: ordtool keys list")


@dataclass(frozen=True, slots=True)
class VerifiedKey:
    id: str
    name: str
    scopes: frozenset[str]


class KeyVerifier:
    """Checks bearer keys against one store: one SHA-256 and one primary-key look-up.

    Verified keys are remembered for ``cache_s`` seconds (by hash, never the key itself), so
    a busy client costs no query per request; a revoked key therefore keeps working for at most
    that long. Unknown keys are not remembered: a flood of wrong keys must not evict good ones.
    """

    def __init__(
        self,
        store: ApiKeyStore,
        cache_s: float,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._cache_s = cache_s
        self._max_entries = max_entries
        self._clock = clock
        self._cache: dict[str, tuple[float, VerifiedKey]] = {}
        self._lock = threading.Lock()

    def cached(self, token: str) -> VerifiedKey | None:
        """The answer without I/O when there is one (for the async fast path)."""
        entry = self._cache.get(hash_key(token))
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]

    def verify(self, token: str) -> VerifiedKey | None:
        """The key's identity, or None for a malformed, unknown or revoked key."""
        hit = self.cached(token)
        if hit is not None:
            return hit
        key_id = key_id_of(token)
        if key_id is None:
            return None
        digest = hash_key(token)
        stored = self._store.get(key_id)
        # Constant-time: the response time must not tell how much of a guessed hash matched.
        if stored is None or not stored.active or not hmac.compare_digest(stored.key_hash, digest):
            return None
        verified = VerifiedKey(stored.id, stored.name, stored.scopes)
        self._remember(digest, verified)
        return verified

    def _remember(self, digest: str, verified: VerifiedKey) -> None:
        if self._cache_s <= 0:
            return
        with self._lock:
            if len(self._cache) >= self._max_entries:
                self._cache.clear()  # crude but bounded; a refill costs one query per key
            self._cache[digest] = (self._clock() + self._cache_s, verified)


def ensure_key_file(
    stores: Sequence[ApiKeyStore], path: Path, name: str, scopes: frozenset[str]
) -> str | None:
    """Create a key and write it to ``path`` (mode 0600) unless the file exists.

    Returns the new key, or None when the file was already there. The file is created with
    O_EXCL, so of two processes starting at once only one makes a key; the other sees the file.
    """
    if path.exists():
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return None
    except OSError as exc:
        raise ConfigurationError(
            f"cannot write the key file {path}: {exc.strerror}",
            hint="set ORDTOOL_DATA_DIR to a writable directory",
        ) from None
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        try:
            _key, token = create_key(stores, name, scopes)
            file.write(token + "\n")
        except BaseException:
            path.unlink(missing_ok=True)  # an empty file would hide the failure next start
            raise
    return token


def read_key_file(path: Path, wait_s: float = 5.0) -> str:
    """The key in ``path``, waiting briefly if another process has just created the file and
    not yet written the key into it."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            key = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            key = ""
        if key:
            return key
        if time.monotonic() >= deadline:
            raise ConfigurationError(
                f"the key file {path} is missing or empty",
                hint="delete it and start again, or set ORDTOOL_CUSTOMER_SERVICE_KEY",
            )
        time.sleep(0.05)


ADMIN_SCOPES = frozenset({ADMIN})
SERVICE_SCOPES = frozenset({"customers:read"})


class _ServiceKeySetting(Protocol):
    @property
    def customer_service_key(self) -> SecretStr | None: ...


class KeyOwner(Protocol):
    """What the first-start functions need of ``ordtool.bootstrap.App``."""

    @property
    def settings(self) -> _ServiceKeySetting: ...

    def api_key_stores(self) -> list[ApiKeyStore]: ...


def ensure_admin_key(app: KeyOwner, path: Path) -> str | None:
    """On first start: an admin key valid on both services, saved at ``path`` (0600) and
    returned so that ``ordtool up`` prints it once. Later starts: None (the file exists)."""
    return ensure_key_file(app.api_key_stores(), path, "admin", ADMIN_SCOPES)


def ensure_service_key(app: KeyOwner, path: Path) -> str:
    """The order service's key for calling the customer service (scope customers:read).

    ``ORDTOOL_CUSTOMER_SERVICE_KEY`` wins; otherwise the key in ``path``, made on first start
    and written to both databases.
    """
    configured = app.settings.customer_service_key
    if configured is not None:
        return configured.get_secret_value()
    created = ensure_key_file(app.api_key_stores(), path, "order-service", SERVICE_SCOPES)
    return created if created is not None else read_key_file(path)
