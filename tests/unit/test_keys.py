"""API keys without I/O: format, hashing, scopes, verification and its cache, the use cases
over in-memory stores, and the key files made on first start."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ordtool.domain.keys import (
    SCOPES,
    ApiKey,
    generate_key,
    grants,
    hash_key,
    key_id_of,
    known_scopes,
    parse_scopes,
)
from ordtool.errors import AlreadyExists, InvalidInput, NotFound
from ordtool.services import keys as use_cases
from ordtool.services.ports import ApiKeyStore

NOW = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)


class MemoryKeyStore:
    def __init__(self, *, fail_add: bool = False) -> None:
        self.keys: dict[str, ApiKey] = {}
        self.gets = 0
        self.fail_add = fail_add
        self.lock = threading.Lock()

    def add(self, key: ApiKey) -> None:
        if self.fail_add:
            raise OSError("disk full")
        with self.lock:
            if key.id in self.keys:
                raise AlreadyExists(key.id)
            self.keys[key.id] = key

    def get(self, key_id: str) -> ApiKey | None:
        self.gets += 1
        return self.keys.get(key_id)

    def list(self) -> list[ApiKey]:
        return list(self.keys.values())

    def revoke(self, key_id: str, now: datetime) -> bool:
        key = self.keys.get(key_id)
        if key is not None and key.revoked_at is None:
            self.keys[key_id] = replace(key, revoked_at=now)
        return key is not None

    def delete(self, key_id: str) -> None:
        self.keys.pop(key_id, None)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_is_prefixed_256_bit_and_stored_only_as_its_sha256() -> None:
    new = generate_key("billing", frozenset({"orders:read"}), NOW)
    prefix, key_id, secret = new.token.split("_", 2)
    assert prefix == "ordk" and key_id == new.key.id
    assert len(secret) == 43  # token_urlsafe(32): 256 random bits
    assert new.key.key_hash == hashlib.sha256(new.token.encode()).hexdigest()
    assert new.token not in repr(new.key)
    other = generate_key("billing", frozenset({"orders:read"}), NOW)
    assert other.token != new.token and other.key.id != new.key.id


def test_only_well_formed_keys_have_an_id() -> None:
    token = generate_key("x", frozenset({"admin"}), NOW).token
    assert key_id_of(token) == token.split("_")[1]
    mangled = (token + "x", token[:-1], token.replace("ordk", "ordx"), "Bearer " + token)
    for bad in ("", "ordk_", *mangled):
        assert key_id_of(bad) is None


def test_scopes_are_checked_and_admin_grants_everything() -> None:
    assert parse_scopes(["orders:read", "customers:read,orders:write"]) == {
        "orders:read",
        "customers:read",
        "orders:write",
    }
    with pytest.raises(InvalidInput) as caught:
        parse_scopes(["orders:read", "orders:delete"])
    assert "orders:delete" in str(caught.value)
    assert all(scope in str(caught.value) for scope in SCOPES)
    with pytest.raises(InvalidInput):
        parse_scopes([" "])
    assert grants(frozenset({"admin"}), "customers:write")
    assert grants(frozenset({"orders:read"}), "orders:read")
    assert not grants(frozenset({"orders:read"}), "orders:write")
    assert known_scopes("orders:read  bogus admin") == {"orders:read", "admin"}


def test_a_name_must_be_printable() -> None:
    with pytest.raises(InvalidInput):
        generate_key("bad\nname", frozenset({"admin"}), NOW)


def _stored(store: MemoryKeyStore, scopes: frozenset[str] = frozenset({"orders:read"})) -> str:
    _key, token = use_cases.create_key([store], "client", scopes)
    return token


def test_verifier_accepts_the_key_and_refuses_revoked_tampered_and_unknown_ones() -> None:
    store = MemoryKeyStore()
    token = _stored(store)
    verifier = use_cases.KeyVerifier(store, cache_s=0)
    verified = verifier.verify(token)
    assert verified is not None and verified.scopes == {"orders:read"}
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert verifier.verify(tampered) is None  # right id, wrong secret
    assert verifier.verify(generate_key("x", frozenset({"admin"}), NOW).token) is None
    assert verifier.verify("ordk_nonsense") is None
    use_cases.revoke_key([store], verified.id)
    assert verifier.verify(token) is None


def test_a_verified_key_is_cached_until_its_ttl_so_a_revoke_waits_at_most_that_long() -> None:
    store = MemoryKeyStore()
    token = _stored(store)
    clock = FakeClock()
    verifier = use_cases.KeyVerifier(store, cache_s=5.0, clock=clock)
    first = verifier.verify(token)
    assert first is not None and store.gets == 1
    use_cases.revoke_key([store], first.id)
    clock.now += 4.9
    assert verifier.verify(token) == first and store.gets == 1  # served from the cache
    clock.now += 0.2
    assert verifier.verify(token) is None and store.gets == 2


def test_unknown_keys_are_not_cached() -> None:
    store = MemoryKeyStore()
    verifier = use_cases.KeyVerifier(store, cache_s=5.0, clock=FakeClock())
    unknown = generate_key("x", frozenset({"admin"}), NOW).token
    for _ in range(3):
        assert verifier.verify(unknown) is None
    assert store.gets == 3


def test_the_cache_is_bounded() -> None:
    store = MemoryKeyStore()
    verifier = use_cases.KeyVerifier(store, cache_s=60.0, max_entries=3, clock=FakeClock())
    for _ in range(10):
        assert verifier.verify(_stored(store)) is not None
    assert len(verifier._cache) <= 3


def test_a_key_goes_to_every_store_or_to_none() -> None:
    first, second = MemoryKeyStore(), MemoryKeyStore()
    key, token = use_cases.create_key([first, second], "both", frozenset({"admin"}))
    assert first.keys[key.id] == second.keys[key.id]
    assert hash_key(token) == first.keys[key.id].key_hash

    healthy, broken = MemoryKeyStore(), MemoryKeyStore(fail_add=True)
    with pytest.raises(OSError):
        use_cases.create_key([healthy, broken], "half", frozenset({"admin"}))
    assert healthy.keys == {}


def test_listing_merges_the_stores_and_shows_where_a_key_is_active() -> None:
    first, second = MemoryKeyStore(), MemoryKeyStore()
    key, _token = use_cases.create_key([first, second], "both", frozenset({"admin"}))
    second.revoke(key.id, NOW)
    [listed] = use_cases.list_keys([first, second])
    assert listed.key.id == key.id and listed.active_in == 1
    assert listed.key.revoked_at == NOW
    use_cases.revoke_key([first, second], key.id)
    assert use_cases.list_keys([first, second])[0].active_in == 0
    with pytest.raises(NotFound):
        use_cases.revoke_key([first, second], "0000000000000000")


def test_key_file_is_made_once_with_mode_0600(tmp_path: Path) -> None:
    store = MemoryKeyStore()
    path = tmp_path / "sub" / "admin.key"
    token = use_cases.ensure_key_file([store], path, "admin", frozenset({"admin"}))
    assert token is not None and path.read_text().strip() == token
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert use_cases.ensure_key_file([store], path, "admin", frozenset({"admin"})) is None
    assert len(store.keys) == 1


def test_concurrent_first_starts_make_one_key_file(tmp_path: Path) -> None:
    store = MemoryKeyStore()
    path = tmp_path / "admin.key"
    results: list[str | None] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        results.append(use_cases.ensure_key_file([store], path, "admin", frozenset({"admin"})))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    made = [r for r in results if r is not None]
    assert len(made) == 1 and len(store.keys) == 1
    assert use_cases.read_key_file(path) == made[0]


def test_a_failed_key_creation_leaves_no_key_file(tmp_path: Path) -> None:
    path = tmp_path / "admin.key"
    with pytest.raises(OSError):
        use_cases.ensure_key_file([MemoryKeyStore(fail_add=True)], path, "a", frozenset({"admin"}))
    assert not path.exists()


class _Settings:
    def __init__(self, key: str | None) -> None:
        from pydantic import SecretStr

        self.customer_service_key = SecretStr(key) if key else None


class _Owner:
    def __init__(self, store: MemoryKeyStore, configured: str | None = None) -> None:
        self.settings = _Settings(configured)
        self.store = store

    def api_key_stores(self) -> list[ApiKeyStore]:
        return [self.store]


def test_service_key_comes_from_the_setting_or_a_file_made_once(tmp_path: Path) -> None:
    store = MemoryKeyStore()
    assert use_cases.ensure_service_key(_Owner(store, "ordk_given"), tmp_path / "s.key") == (
        "ordk_given"
    )
    assert not (tmp_path / "s.key").exists() and not store.keys
    made = use_cases.ensure_service_key(_Owner(store), tmp_path / "s.key")
    assert use_cases.ensure_service_key(_Owner(store), tmp_path / "s.key") == made
    [key] = store.keys.values()
    assert key.scopes == {"customers:read"} and key.key_hash == hash_key(made)
    admin_file = tmp_path / "admin.key"
    assert use_cases.ensure_admin_key(_Owner(store), admin_file) is not None
    assert use_cases.ensure_admin_key(_Owner(store), admin_file) is None
