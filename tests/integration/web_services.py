"""The two FastAPI services in-process (FastAPI's TestClient, lifespan included) over one test's
databases, with API keys made the way ``ordtool keys create`` makes them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from ordtool.bootstrap import App
from ordtool.config import Settings
from ordtool.services.keys import create_key
from ordtool.store.tables import customers, customers_outbox, orders, orders_outbox
from ordtool.web import customers_app, orders_app

PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "request_id"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Services:
    app: App  # the test's own view of both databases
    customers: TestClient
    orders: TestClient
    admin: dict[str, str]  # headers with an admin key

    def key(self, *scopes: str) -> dict[str, str]:
        _, token = create_key(self.app.api_key_stores(), "test", frozenset(scopes))
        return bearer(token)

    def new_customer(self, email: str = "ada@example.com") -> dict[str, Any]:
        body = {"name": "Ada Lovelace", "email": email, "address": "12 St James's Square"}
        response = self.customers.post("/customers", json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def new_order(self, customer_id: int, sku: str = "BOOK-1") -> dict[str, Any]:
        body = {"customer_id": customer_id, "sku": sku, "quantity": 1}
        response = self.orders.post("/orders", json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def count(self, table: Any) -> int:
        engine = self.app.orders_engine if table in (orders, orders_outbox) else (
            self.app.customers_engine
        )
        with engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(table)).scalar_one())

    def written(self) -> tuple[int, int, int, int]:
        """Rows in every table a request could write: (orders, their outbox, customers, theirs)."""
        return (
            self.count(orders),
            self.count(orders_outbox),
            self.count(customers),
            self.count(customers_outbox),
        )

    def events(self, table: Any) -> list[dict[str, Any]]:
        engine = self.app.orders_engine if table is orders_outbox else self.app.customers_engine
        with engine.connect() as connection:
            rows = connection.execute(select(table.c.payload).order_by(table.c.id))
            return [json.loads(row.payload) for row in rows]


@contextmanager
def running_services(settings: Settings) -> Iterator[Services]:
    """Both services, each with its own App as in its own process, sharing the test's
    databases; the orders service checks customers in the local customers database unless
    ``settings`` names a customer service URL."""
    app = App(settings)
    _, token = create_key(app.api_key_stores(), "admin", frozenset({"admin"}))
    customers_api = customers_app.create_app(App(settings))
    orders_api = orders_app.create_app(App(settings))
    with TestClient(customers_api) as customer_client, TestClient(orders_api) as order_client:
        yield Services(app, customer_client, order_client, bearer(token))
    app.close()


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    """The response is RFC 9457 problem details with this status; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body.keys() >= PROBLEM_KEYS
    assert body["status"] == status
    assert body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body
