"""The order service drops a cached customer when the customer service says it changed."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from ordtool.bootstrap import App
from ordtool.config import Settings
from ordtool.web import orders_app
from tests.integration.customer_stub import StubCustomerService
from tests.integration.test_messaging_support import (
    publish_raw,
    vhost_fixture,  # noqa: F401
    wait_until,
    with_broker,
)


def test_a_customer_event_drops_the_cached_lookup(settings: Settings, vhost: str) -> None:
    stub = StubCustomerService()
    stub.start()
    try:
        configured = with_broker(settings, vhost).model_copy(
            update={"customer_service_url": stub.url})
        app = App(configured)
        with TestClient(orders_app.create_app(app)) as client:
            consumer = client.app.state.customer_events  # type: ignore[attr-defined]
            assert consumer.ready.wait(30), "the customer-events consumer never started"
            app.customer_directory.lookup(1)
            app.customer_directory.lookup(1)
            assert stub.requests == 1  # the second look-up came from the cache

            event = {"id": "7d1c1c2e-0000-4000-8000-000000000001", "type": "customer.updated",
                     "version": 1, "occurred_at": "2026-12-03T10:00:00Z",
                     "correlation_id": None, "data": {"id": 1}}
            publish_raw(app, "customer.updated", json.dumps(event).encode(), event["id"])

            def asked_again() -> bool:
                app.customer_directory.lookup(1)
                return stub.requests == 2

            wait_until(asked_again, 20, "the cached customer to be dropped")
    finally:
        stub.stop()
