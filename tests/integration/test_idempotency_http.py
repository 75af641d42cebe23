"""Idempotency-Key over real HTTP (uvicorn) on SQLite and PostgreSQL: replay, body mismatch,
in progress, failures that free the key, stored 4xx, scoping, expiry, and concurrent requests
with one key creating exactly one order."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from ordtool.bootstrap import App
from ordtool.domain.clock import utc_now
from ordtool.domain.commands import CreateCustomer
from ordtool.services import customers, keys
from ordtool.store.tables import orders, orders_idempotency
from tests.integration.auth_app import Probe, build, serving


@dataclass
class Service:
    url: str
    app: App
    probe: Probe
    customer_id: int
    token: str

    def post(
        self,
        body: Any,
        key: str | None = "key-1",
        *,
        path: str = "/orders",
        token: str | None = None,
        **headers: str,
    ) -> httpx.Response:
        sent = {"Authorization": f"Bearer {token or self.token}"} | headers
        if key is not None:
            sent["Idempotency-Key"] = key
        content = body if isinstance(body, bytes) else None
        return httpx.post(
            self.url + path,
            headers=sent,
            content=content,
            json=None if content is not None else body,
            timeout=60,
        )

    def order_count(self) -> int:
        with self.app.orders_engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(orders)).scalar_one())

    def order(self) -> dict[str, Any]:
        return {"customer_id": self.customer_id, "sku": "BOOK-1", "quantity": 2}


@pytest.fixture
def service(any_app: App) -> Iterator[Service]:
    customer = customers.create_customer(
        any_app.customers_uow, CreateCustomer(name="Ada", email="ada@example.com", address="1 Rd")
    )
    _key, token = keys.create_key(any_app.api_key_stores(), "writer", frozenset({"orders:write"}))
    api, probe = build(any_app)
    with ExitStack() as stack:
        url = stack.enter_context(serving(api))
        yield Service(url, any_app, probe, customer.id, token)
        probe.release.set()


def test_a_retry_with_the_same_body_replays_the_first_response(service: Service) -> None:
    first = service.post(service.order())
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    # The same JSON with other key order and spacing is the same request.
    reordered = b'{"quantity": 2,  "sku": "BOOK-1", "customer_id": %d}' % service.customer_id
    again = service.post(reordered)
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert service.order_count() == 1 and service.probe.runs == 1


def test_the_same_key_with_another_body_is_422(service: Service) -> None:
    assert service.post(service.order()).status_code == 201
    other = service.post(service.order() | {"quantity": 3})
    assert other.status_code == 422
    assert other.headers["content-type"].startswith("application/problem+json")
    assert "different request body" in other.json()["detail"]
    assert service.order_count() == 1


def test_a_request_still_running_makes_the_same_key_409(service: Service) -> None:
    results: list[httpx.Response] = []
    first = threading.Thread(
        target=lambda: results.append(service.post(service.order(), **{"X-Test-Hold": "30"}))
    )
    first.start()
    assert service.probe.entered.wait(30)
    busy = service.post(service.order())
    assert busy.status_code == 409 and busy.headers["retry-after"] == "1"
    assert "still being processed" in busy.json()["detail"]
    service.probe.release.set()
    first.join(30)
    assert results[0].status_code == 201
    replay = service.post(service.order())
    assert replay.status_code == 201 and replay.json() == results[0].json()
    assert service.order_count() == 1


@pytest.mark.parametrize("failure", ["raise", "503"])
def test_a_failed_request_frees_its_key_for_a_retry(service: Service, failure: str) -> None:
    failed = service.post(service.order(), **{"X-Test-Fail": failure})
    assert failed.status_code >= 500
    assert service.order_count() == 0
    retried = service.post(service.order())
    assert retried.status_code == 201 and "idempotent-replayed" not in retried.headers
    assert service.order_count() == 1 and service.probe.runs == 2


def test_a_client_error_is_stored_and_replayed(service: Service) -> None:
    unknown = {"customer_id": 999_999, "sku": "BOOK-1", "quantity": 1}
    first = service.post(unknown)
    assert first.status_code == 422 and "999999" in first.json()["detail"]
    again = service.post(unknown)
    assert again.status_code == 422 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["content-type"].startswith("application/problem+json")
    assert service.probe.runs == 1


def test_keys_are_scoped_to_the_caller_and_the_route(service: Service) -> None:
    _key, other = keys.create_key(
        service.app.api_key_stores(), "other", frozenset({"orders:write"})
    )
    responses = [
        service.post(service.order()),
        service.post(service.order(), token=other),
        service.post(service.order(), path="/other"),
    ]
    assert [r.status_code for r in responses] == [201, 201, 201]
    assert not any("idempotent-replayed" in r.headers for r in responses)
    assert service.order_count() == 3


def test_without_a_key_every_request_runs(service: Service) -> None:
    assert [service.post(service.order(), key=None).status_code for _ in range(2)] == [201, 201]
    assert service.order_count() == 2


def test_a_malformed_key_is_400(service: Service) -> None:
    for key in ("", "x" * 201, "tab\there", "caf\u00e9"):
        response = httpx.post(
            service.url + "/orders",
            headers={"Authorization": f"Bearer {service.token}", "Idempotency-Key": key.encode()},
            json=service.order(),
            timeout=60,
        )
        assert response.status_code == 400, key
        assert "Idempotency-Key" in response.json()["detail"]
    assert service.order_count() == 0


def _age_rows(app: App, by: timedelta) -> None:
    with app.orders_engine.begin() as connection:
        connection.execute(
            update(orders_idempotency).values(created_at=utc_now() - by)
        )


def test_an_expired_key_is_forgotten(service: Service) -> None:
    assert service.post(service.order()).status_code == 201
    _age_rows(service.app, timedelta(hours=25))  # the default TTL is 24 h
    fresh = service.post(service.order() | {"quantity": 5})
    assert fresh.status_code == 201 and "idempotent-replayed" not in fresh.headers
    assert fresh.json()["quantity"] == 5 and service.order_count() == 2


def test_a_run_that_died_frees_its_key_after_the_lock_time(service: Service) -> None:
    store = service.app.idempotency_store("orders")
    caller = "key:" + keys.list_keys(service.app.api_key_stores())[0].key.id
    now = utc_now()
    scope = (caller, "POST /orders", "key-1")
    # As a process that died mid-request left it: a running row with the request's hash.
    canonical = json.dumps(service.order(), sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    assert store.claim(scope, digest, now, expired_before=now, abandoned_before=now) is None
    assert service.post(service.order()).status_code == 409  # a fresh running row
    _age_rows(service.app, timedelta(minutes=2))  # older than idempotency_lock_s (60 s)
    assert service.post(service.order()).status_code == 201


def test_purge_removes_expired_and_abandoned_rows_only(any_app: App) -> None:
    store = any_app.idempotency_store("orders")
    now = utc_now()
    old, abandoned, fresh = (("c", "r", k) for k in ("old", "abandoned", "fresh"))
    ages = ((old, timedelta(days=2)), (abandoned, timedelta(minutes=5)), (fresh, timedelta()))
    for scope, age in ages:
        at = now - age
        assert store.claim(scope, "h", at, expired_before=at, abandoned_before=at) is None
    store.complete(old, 201, "{}")
    store.complete(fresh, 201, "{}")
    deleted = store.purge(now - timedelta(days=1), now - timedelta(minutes=1))
    assert deleted == 2
    left = store.claim(fresh, "h", now, expired_before=now - timedelta(days=1),
                       abandoned_before=now - timedelta(minutes=1))
    assert left is not None and left.status_code == 201


def test_concurrent_requests_with_one_key_create_one_order(service: Service) -> None:
    """Eight clients send the same order with the same key at the same moment (each held
    briefly inside the handler so that they overlap): exactly one order exists afterwards."""
    clients = 8
    barrier = threading.Barrier(clients)
    results: list[httpx.Response] = []
    lock = threading.Lock()

    def send() -> None:
        barrier.wait()
        response = service.post(service.order(), key="shared", **{"X-Test-Hold": "0.5"})
        with lock:
            results.append(response)

    threads = [threading.Thread(target=send) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == clients
    assert service.order_count() == 1 and service.probe.runs == 1
    assert {r.status_code for r in results} <= {201, 409}
    created = [r for r in results if r.status_code == 201]
    originals = [r for r in created if "idempotent-replayed" not in r.headers]
    assert len(originals) == 1
    assert all(r.json() == originals[0].json() for r in created)
    # After the dust settles, everyone gets the one order.
    final = service.post(service.order(), key="shared")
    assert final.status_code == 201 and final.json() == originals[0].json()
