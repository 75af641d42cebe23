"""Every route of both services, in-process over real databases: what they answer, what they
write (and that bad input writes nothing), problem details, limits, request ids, probes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from pydantic import SecretStr

from ordtool.bootstrap import App
from ordtool.config import CustomerCheckSettings, Settings
from ordtool.domain.commands import PlaceOrder, parse_input
from ordtool.errors import InvalidInput
from ordtool.services import orders as order_use_cases
from ordtool.store.tables import customers_outbox, orders, orders_outbox
from ordtool.web import orders_app
from tests.integration.customer_stub import StubCustomerService, closed_port
from tests.integration.web_services import Services, assert_problem, bearer, running_services

LIMIT = 16 * 1024


@pytest.fixture
def services(sqlite_app: App) -> Iterator[Services]:
    with running_services(sqlite_app.settings) as running:
        yield running


@pytest.fixture
def both_backends(any_app: App) -> Iterator[Services]:
    with running_services(any_app.settings) as running:
        yield running


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# -- customers ---------------------------------------------------------------------------------


def test_customer_lifecycle(both_backends: Services) -> None:
    api = both_backends
    body = {"name": "Ada Lovelace", "email": "Ada@Example.com", "address": "12 St James's Sq"}
    created = api.customers.post(
        "/customers", json=body, headers=api.admin | {"X-Request-ID": "create-1"}
    )
    assert created.status_code == 201
    customer = created.json()
    assert created.headers["location"] == f"/customers/{customer['id']}"
    assert customer["email"] == "ada@example.com"
    assert api.customers.get(created.headers["location"], headers=api.admin).json() == customer
    listed = api.customers.get("/customers", headers=api.admin).json()
    assert listed == {"items": [customer], "next_cursor": None}

    patched = api.customers.patch(
        f"/customers/{customer['id']}",
        json={"address": "1 New Road"},
        headers=api.admin | {"X-Request-ID": "update-1"},
    )
    assert patched.status_code == 200
    updated = patched.json()
    assert (updated["name"], updated["address"]) == ("Ada Lovelace", "1 New Road")
    assert updated["created_at"] == customer["created_at"]
    assert updated["updated_at"] > customer["updated_at"]

    deleted = api.customers.delete(
        f"/customers/{customer['id']}", headers=api.admin | {"X-Request-ID": "delete-1"}
    )
    assert deleted.status_code == 204 and deleted.content == b""
    gone = api.customers.get(f"/customers/{customer['id']}", headers=api.admin)
    assert "does not exist" in assert_problem(gone, 404)["detail"]
    assert_problem(api.customers.delete(f"/customers/{customer['id']}", headers=api.admin), 404)

    events = api.events(customers_outbox)
    assert [(e["type"], e["correlation_id"]) for e in events] == [
        ("customer.created", "create-1"),
        ("customer.updated", "update-1"),
        ("customer.deleted", "delete-1"),
    ]
    assert events[2]["data"]["address"] == "1 New Road"


def test_update_with_the_same_values_writes_no_event(services: Services) -> None:
    customer = services.new_customer()
    same = {"name": customer["name"], "address": customer["address"]}
    response = services.customers.patch(
        f"/customers/{customer['id']}", json=same, headers=services.admin
    )
    assert response.json() == customer
    assert len(services.events(customers_outbox)) == 1
    url = f"/customers/{customer['id']}"
    empty = services.customers.patch(url, json={}, headers=services.admin)
    assert "nothing to update" in assert_problem(empty, 422)["detail"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "", "email": "a@b.io", "address": "x"}, "name must not be empty"),
        ({"name": "n" * 10_000, "email": "a@b.io", "address": "x"}, "name must be at most 200"),
        ({"name": "n", "email": "a@b.io", "address": "x" * 10_000}, "address must be at most 500"),
        ({"name": "n", "email": "not-an-email", "address": "x"}, "email 'not-an-email' is not"),
        ({"name": "n", "email": "a@b.io", "address": "x", "vip": True}, "vip is not a known"),
        ({"name": "n", "address": "x"}, "email is required"),
        ({"name": "a\nb", "email": "a@b.io", "address": "x"}, "control characters"),
    ],
)
def test_bad_customer_input_is_422_and_writes_nothing(
    services: Services, body: dict[str, Any], message: str
) -> None:
    response = services.customers.post("/customers", json=body, headers=services.admin)
    problem = assert_problem(response, 422)
    assert message in problem["detail"]
    assert problem["errors"] and all(e["message"] for e in problem["errors"])
    assert services.written() == (0, 0, 0, 0)


def test_duplicate_email_is_409(services: Services) -> None:
    services.new_customer("ada@example.com")
    again = services.customers.post(
        "/customers",
        json={"name": "Other", "email": "ADA@example.com", "address": "x"},
        headers=services.admin,
    )
    assert "already exists" in assert_problem(again, 409)["detail"]
    assert services.count(customers_outbox) == 1


# -- orders ------------------------------------------------------------------------------------


def test_order_lifecycle(both_backends: Services) -> None:
    api = both_backends
    customer = api.new_customer()
    placed = api.orders.post(
        "/orders",
        json={"customer_id": customer["id"], "sku": "BOOK-42", "quantity": "2"},
        headers=api.admin | {"X-Request-ID": "place-1"},
    )
    assert placed.status_code == 201
    order = placed.json()
    assert order["customer_check"] == "fresh" and placed.headers["x-customer-check"] == "fresh"
    assert (order["status"], order["quantity"]) == ("PENDING", 2)
    assert placed.headers["location"] == f"/orders/{order['id']}"
    shown = api.orders.get(placed.headers["location"], headers=api.admin).json()
    assert shown == {k: v for k, v in order.items() if k != "customer_check"}

    url = f"/orders/{order['id']}/status"
    done = api.orders.post(url, json={"status": "completed"}, headers=api.admin)
    assert done.status_code == 200
    assert (done.json()["status"], done.json()["changed"]) == ("COMPLETED", True)
    again = api.orders.post(url, json={"status": "COMPLETED"}, headers=api.admin)
    assert again.status_code == 200 and again.json()["changed"] is False
    back = api.orders.post(url, json={"status": "PENDING"}, headers=api.admin)
    assert "cannot go from COMPLETED to PENDING" in assert_problem(back, 409)["detail"]

    events = api.events(orders_outbox)
    assert [e["type"] for e in events] == ["order.created", "order.status_changed"]
    assert events[0]["correlation_id"] == "place-1"


GOOD_ORDER = {"customer_id": 1, "sku": "BOOK-1", "quantity": 1}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"quantity": 0}, "quantity must be a whole number from 1 to 10000, got 0"),
        ({"quantity": -1}, "got -1"),
        ({"quantity": 1.5}, "got 1.5"),
        ({"quantity": "abc"}, "got 'abc'"),
        ({"quantity": 10**30}, "quantity must be a whole number"),
        ({"quantity": True}, "got True"),
        ({"customer_id": "12a"}, "customer_id: an id must be a positive whole number"),
        ({"customer_id": -3}, "got -3"),
        ({"customer_id": 0}, "got 0"),
        ({"sku": ""}, "sku must not be empty"),
        ({"sku": "x" * 10_000}, "sku must be at most 64 characters"),
        ({"sku": "a b"}, "sku may hold only"),
        ({"colour": "red"}, "colour is not a known field"),
    ],
)
def test_bad_order_input_is_422_and_writes_nothing(
    services: Services, change: dict[str, Any], message: str
) -> None:
    services.new_customer()
    before = services.written()
    response = services.orders.post("/orders", json=GOOD_ORDER | change, headers=services.admin)
    problem = assert_problem(response, 422)
    assert message in problem["detail"]
    assert problem["type"] == "urn:ordtool:problem:invalid-input"
    assert services.written() == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "the body is not valid JSON"),
        (b"[1, 2]", "the body must be a JSON object"),
        (b"", "the body must be a JSON object"),
        (b'{"customer_id": 1, "sku": "B"}', "quantity is required"),
    ],
)
def test_malformed_order_bodies_are_422(services: Services, content: bytes, message: str) -> None:
    headers = services.admin | {"Content-Type": "application/json"}
    response = services.orders.post("/orders", content=content, headers=headers)
    assert message in assert_problem(response, 422)["detail"]
    assert services.written() == (0, 0, 0, 0)


def test_a_body_that_is_not_sent_as_json_says_so(services: Services) -> None:
    headers = services.admin | {"Content-Type": "text/plain"}
    response = services.orders.post("/orders", content=b'{"quantity": 1}', headers=headers)
    problem = assert_problem(response, 422)
    assert problem["detail"] == "send the body as JSON with Content-Type: application/json"


def test_unknown_customer_is_422_and_counted(services: Services) -> None:
    counted = metric("ordtool_orders_created_total", outcome="unknown_customer")
    response = services.orders.post(
        "/orders", json=GOOD_ORDER | {"customer_id": 999}, headers=services.admin
    )
    problem = assert_problem(response, 422)
    assert problem["detail"].startswith("customer 999 does not exist")
    assert problem["type"] == "urn:ordtool:problem:unknown-customer"
    assert metric("ordtool_orders_created_total", outcome="unknown_customer") == counted + 1
    assert services.written() == (0, 0, 0, 0)


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        ("SHIPPED", 422, "unknown order status 'SHIPPED'; use one of PENDING, COMPLETED, FAILED"),
        ("", 422, "use one of PENDING, COMPLETED, FAILED"),
        (None, 422, "use one of PENDING, COMPLETED, FAILED"),
    ],
)
def test_unknown_status_is_422_listing_the_allowed(
    services: Services, status: Any, code: int, message: str
) -> None:
    order = services.new_order(services.new_customer()["id"])
    before = services.written()
    response = services.orders.post(
        f"/orders/{order['id']}/status", json={"status": status}, headers=services.admin
    )
    assert message in assert_problem(response, code)["detail"]
    assert services.written() == before


def test_status_of_unknown_order_is_404(services: Services) -> None:
    response = services.orders.post(
        "/orders/77/status", json={"status": "FAILED"}, headers=services.admin
    )
    assert "order 77 does not exist" in assert_problem(response, 404)["detail"]
    bad_id = services.orders.get("/orders/12a", headers=services.admin)
    assert "an id must be a positive whole number" in assert_problem(bad_id, 422)["detail"]


def test_list_filters_and_cursor_pagination(both_backends: Services) -> None:
    api = both_backends
    first, second = api.new_customer("a@example.com")["id"], api.new_customer("b@e.com")["id"]
    ids = [api.new_order(first if n % 2 else second, f"SKU-{n}")["id"] for n in range(5)]
    api.orders.post(f"/orders/{ids[0]}/status", json={"status": "FAILED"}, headers=api.admin)

    seen: list[int] = []
    cursor: int | None = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = api.orders.get("/orders", params=params, headers=api.admin).json()
        seen += [order["id"] for order in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)

    def listed(**params: Any) -> list[int]:
        response = api.orders.get("/orders", params=params, headers=api.admin)
        assert response.status_code == 200, response.text
        return [order["id"] for order in response.json()["items"]]

    assert listed(customer_id=first) == [ids[3], ids[1]]
    assert listed(status="failed") == [ids[0]]
    assert listed(since="2000-01-01T00:00:00Z", until="2999-01-01T09:00:00+09:00") == seen
    assert listed(until="2000-01-01T00:00:00Z") == []


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=501", "limit must be a whole number from 1 to 500, got '501'"),
        ("limit=0", "limit must be a whole number from 1 to 500"),
        ("limit=abc", "limit must be a whole number from 1 to 500"),
        ("cursor=-1", "an id must be a positive whole number"),
        ("status=SHIPPED", "use one of PENDING, COMPLETED, FAILED"),
        ("since=2026-01-01T00:00:00", "needs a time zone"),
        ("since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z", "since must be before until"),
        ("colour=red", "colour is not a known field"),
    ],
)
def test_bad_list_parameters_are_422(services: Services, query: str, message: str) -> None:
    response = services.orders.get(f"/orders?{query}", headers=services.admin)
    problem = assert_problem(response, 422)
    assert message in problem["detail"]
    assert problem["instance"] == "/orders"  # the path, never the query string


def test_page_size_maximum_is_500(services: Services) -> None:
    assert services.orders.get("/orders?limit=500", headers=services.admin).status_code == 200
    assert services.customers.get("/customers?limit=500", headers=services.admin).status_code == 200
    assert_problem(services.customers.get("/customers?limit=501", headers=services.admin), 422)


# -- limits, errors, request ids ---------------------------------------------------------------


def _padded_order(size: int, customer_id: int) -> bytes:
    body = f'{{"customer_id": {customer_id}, "sku": "BOOK-1", "quantity": 1}}'.encode()
    return body[:-1] + b" " * (size - len(body)) + b"}"


def test_body_limit_at_16_kib(services: Services) -> None:
    customer_id = services.new_customer()["id"]
    headers = services.admin | {"Content-Type": "application/json"}
    at_limit = services.orders.post(
        "/orders", content=_padded_order(LIMIT, customer_id), headers=headers
    )
    assert at_limit.status_code == 201, at_limit.text
    before = services.written()
    declared = services.orders.post(
        "/orders", content=_padded_order(LIMIT + 1, customer_id), headers=headers
    )
    assert "at most 16384 bytes" in assert_problem(declared, 413)["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked, counted as it streams
        body = _padded_order(4 * LIMIT, customer_id)
        yield from (body[i : i + 1000] for i in range(0, len(body), 1000))

    streamed = services.orders.post("/orders", content=chunks(), headers=headers)
    assert_problem(streamed, 413)
    assert services.written() == before


def test_request_id_is_echoed_or_generated(services: Services) -> None:
    given = services.orders.get("/healthz", headers={"X-Request-ID": "abc-123.x:y"})
    assert given.headers["x-request-id"] == "abc-123.x:y"
    for unsafe in ("has space", "x" * 129, "new\\nline", "quote\""):
        replaced = services.orders.get("/healthz", headers={"X-Request-ID": unsafe})
        assert re.fullmatch(r"[0-9a-f]{32}", replaced.headers["x-request-id"])
    first = services.customers.get("/healthz").headers["x-request-id"]
    second = services.customers.get("/healthz").headers["x-request-id"]
    assert first != second


def test_unexpected_error_is_500_without_internals(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: Any) -> None:
        raise RuntimeError("secret-internal-detail at /srv/db password=hunter2")

    monkeypatch.setattr(order_use_cases, "get_order", broken)
    response = services.orders.get("/orders/1", headers=services.admin)
    problem = assert_problem(response, 500)
    assert "secret" not in response.text and "hunter2" not in response.text
    assert problem["title"] == "Internal error"


def test_customer_service_unreachable_is_503_with_retry_after(settings: Settings) -> None:
    unreachable = settings.model_copy(
        update={
            "customer_service_url": f"http://127.0.0.1:{closed_port()}",
            "customer_check": CustomerCheckSettings(deadline_s=0.3),
        }
    )
    counted = metric("ordtool_orders_created_total", outcome="unavailable")
    with running_services(unreachable) as api:
        response = api.orders.post("/orders", json=GOOD_ORDER, headers=api.admin)
        problem = assert_problem(response, 503)
        assert int(response.headers["retry-after"]) >= 1
        assert "customer service unavailable" in problem["detail"]
        assert api.written()[:2] == (0, 0)
        readiness = api.orders.get("/readyz").json()["checks"]["customer_service"]
        assert readiness["kind"] == "http" and readiness["required"] is False
    assert metric("ordtool_orders_created_total", outcome="unavailable") == counted + 1


# -- operability -------------------------------------------------------------------------------


def test_healthz_and_readyz_need_no_key(services: Services) -> None:
    for client in (services.orders, services.customers):
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"]["database"] == {"ok": True}
    assert "customer_service" not in services.customers.get("/readyz").json()["checks"]
    assert services.orders.get("/readyz").json()["checks"]["customer_service"]["kind"] == "local"


def test_readyz_reports_a_held_connection_that_is_down(services: Services) -> None:
    held: App = services.orders.app.state.app  # type: ignore[attr-defined]
    held.readiness_probes["broker"] = lambda: False
    response = services.orders.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "not ready"
    assert response.json()["checks"]["broker"] == {"ok": False}
    held.readiness_probes["broker"] = lambda: True
    assert services.orders.get("/readyz").status_code == 200


def test_readyz_reports_the_live_hubs_broker_connection_without_requiring_it(
    services: Services,
) -> None:
    state = services.orders.app.state  # type: ignore[attr-defined]
    real_hub = state.live_hub
    try:
        state.live_hub = SimpleNamespace(broker_connected=False)
        response = services.orders.get("/readyz")
        assert response.status_code == 200  # orders still commit to the outbox
        assert response.json()["checks"]["live_broker"] == {"ok": False, "required": False}
        state.live_hub = SimpleNamespace(broker_connected=None)  # no broker configured
        assert "live_broker" not in services.orders.get("/readyz").json()["checks"]
    finally:
        state.live_hub = real_hub


def test_readyz_is_503_when_the_database_is_down(settings: Settings) -> None:
    url = f"postgresql://postgres@127.0.0.1:{closed_port()}/x"
    down = settings.model_copy(update={"orders_database_url": SecretStr(url)})
    with TestClient(orders_app.create_app(App(down))) as client:
        assert client.get("/healthz").status_code == 200
        response = client.get("/readyz")
        assert response.status_code == 503
        check = response.json()["checks"]["database"]
        assert check["ok"] is False and "postgres" not in check["detail"]


def test_metrics_need_admin_and_label_routes_by_template(services: Services) -> None:
    assert_problem(services.orders.get("/metrics"), 401)
    reader = services.key("orders:read")
    assert_problem(services.orders.get("/metrics", headers=reader), 403)
    assert services.orders.get("/orders/123456", headers=reader).status_code == 404
    created = metric("ordtool_orders_created_total", outcome="created")
    services.new_order(services.new_customer()["id"])

    exposition = services.orders.get("/metrics", headers=services.admin)
    assert exposition.status_code == 200
    assert exposition.headers["content-type"].startswith("text/plain")
    text = exposition.text
    assert 'route="/orders/{order_id}"' in text and "/orders/123456" not in text
    assert "ordtool_http_request_duration_seconds_bucket" in text
    assert metric("ordtool_orders_created_total", outcome="created") == created + 1
    assert metric(
        "ordtool_http_request_duration_seconds_count",
        service="orders",
        route="/orders/{order_id}",
        method="GET",
        status="404",
    ) >= 1


def test_every_route_needs_a_key_with_its_scope(services: Services) -> None:
    reader = services.key("orders:read", "customers:read")
    customer = services.new_customer()
    writes = [
        (services.customers, "post", "/customers", {"json": {"name": "n"}}),
        (services.customers, "patch", f"/customers/{customer['id']}", {"json": {"name": "n"}}),
        (services.customers, "delete", f"/customers/{customer['id']}", {}),
        (services.orders, "post", "/orders", {"json": GOOD_ORDER}),
        (services.orders, "post", "/orders/1/status", {"json": {"status": "FAILED"}}),
    ]
    for client, method, path, extra in writes:
        assert_problem(getattr(client, method)(path, **extra), 401)
        assert_problem(getattr(client, method)(path, headers=reader, **extra), 403)
    reads = [(services.customers, "/customers"), (services.orders, "/orders")]
    for client, path in reads:
        assert_problem(client.get(path, headers=bearer("ordk_wrong")), 401)
        assert client.get(path, headers=reader).status_code == 200
    assert services.written()[2:] == (1, 1)


def test_openapi_documents_every_route(services: Services) -> None:
    assert services.orders.get("/docs").status_code == 200
    order_paths = services.orders.get("/openapi.json").json()["paths"]
    assert {"/orders", "/orders/{order_id}", "/orders/{order_id}/status"} <= order_paths.keys()
    customer_paths = services.customers.get("/openapi.json").json()["paths"]
    assert {"/customers", "/customers/{customer_id}"} <= customer_paths.keys()
    assert {"get", "patch", "delete"} <= customer_paths["/customers/{customer_id}"].keys()


@pytest.mark.parametrize(
    "body",
    [
        {"customer_id": "12a", "sku": "", "quantity": "0"},
        {"customer_id": "-3", "sku": "x" * 10_000, "quantity": "1.5"},
        {"customer_id": "1", "sku": "BOOK", "quantity": "abc", "colour": "red"},
    ],
)
def test_http_refuses_with_the_cli_words(services: Services, body: dict[str, str]) -> None:
    """The CLI validates its options with parse_input; HTTP must say exactly the same."""
    with pytest.raises(InvalidInput) as refused:
        parse_input(PlaceOrder, body)
    response = services.orders.post("/orders", json=body, headers=services.admin)
    assert assert_problem(response, 422)["detail"] == str(refused.value)


def test_stale_accept_is_visible_and_the_request_id_travels(settings: Settings) -> None:
    """Over real HTTP to a stub customer service: the request id reaches it; once it is down,
    a customer looked up before is accepted from cache and the answer says stale; one never
    looked up gets 503 with Retry-After."""
    stub = StubCustomerService()
    stub.start()
    try:
        configured = settings.model_copy(
            update={
                "customer_service_url": stub.url,
                # Every cached answer is stale at once: the next look-up must ask again.
                "customer_check": CustomerCheckSettings(
                    deadline_s=0.5, cache_fresh_s=0, cache_revalidate_s=0
                ),
            }
        )
        with running_services(configured) as api:
            fresh = api.orders.post(
                "/orders", json=GOOD_ORDER, headers=api.admin | {"X-Request-ID": "via-stub-1"}
            )
            assert fresh.status_code == 201 and fresh.json()["customer_check"] == "fresh"
            assert stub.state.headers[-1]["x-request-id"] == "via-stub-1"
            stub.stop()

            stale = api.orders.post("/orders", json=GOOD_ORDER, headers=api.admin)
            assert stale.status_code == 201, stale.text
            assert stale.json()["customer_check"] == "stale"
            assert stale.headers["x-customer-check"] == "stale"
            never_seen = api.orders.post(
                "/orders", json=GOOD_ORDER | {"customer_id": 2}, headers=api.admin
            )
            assert_problem(never_seen, 503)
            assert int(never_seen.headers["retry-after"]) >= 1
            assert api.count(orders) == 2
    finally:
        stub.stop()
