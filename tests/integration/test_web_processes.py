"""The two services as real uvicorn processes talking HTTP to each other, each under its own
time zone: request ids cross from one to the other, every timestamp is UTC with Z whatever the
zone, logs hold no query string and no key, and the limits hold over real sockets."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from ordtool.bootstrap import App
from ordtool.config import Settings
from ordtool.services.keys import create_key
from tests.integration.customer_stub import closed_port
from tests.processes import ordtool_env

START_TIMEOUT_S = 60.0
SKEW = timedelta(seconds=5)  # the services' clocks are this machine's; only zones differ


@dataclass
class Service:
    url: str
    log: Path
    process: subprocess.Popen[bytes]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_log(self, found: Callable[[str], bool], timeout_s: float = 10.0) -> str:
        """The log once ``found`` holds (an access line is written just after the response)."""
        deadline = time.monotonic() + timeout_s
        while not found(text := self.log_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert found(text), f"not in {self.log}:\n{text[-3000:]}"
        return text


@dataclass
class Stack:
    customers: Service
    orders: Service
    admin: dict[str, str]
    token: str
    service_token: str


def _start(name: str, data_dir: Path, env: dict[str, str]) -> Service:
    port = closed_port()
    log = data_dir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "uvicorn", "--factory", f"ordtool.web.asgi:{name}",
                "--host", "127.0.0.1", "--port", str(port),
            ],
            env=env,
            cwd=data_dir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    service = Service(f"http://127.0.0.1:{port}", log, process)
    _wait_healthy(service)
    return service


def _wait_healthy(service: Service) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert service.process.poll() is None, service.log_text()
        try:
            if httpx.get(f"{service.url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{service.url} did not start:\n{service.log_text()}")


def _stop(service: Service) -> None:
    service.process.terminate()
    try:
        service.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        service.process.kill()
        service.process.wait()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("web-stack")
    settings = Settings(environment="test", data_dir=data_dir, _env_file=None)  # type: ignore[call-arg]
    app = App(settings)
    _, token = create_key(app.api_key_stores(), "tests", frozenset({"admin"}))
    _, service_token = create_key(app.api_key_stores(), "orders", frozenset({"customers:read"}))
    app.close()
    # Development (text logs) in Tokyo, production (JSON logs) in New York.
    customers = _start(
        "customers",
        data_dir,
        ordtool_env(settings, TZ="Asia/Tokyo", ORDTOOL_ENVIRONMENT="development"),
    )
    try:
        orders = _start(
            "orders",
            data_dir,
            ordtool_env(
                settings,
                TZ="America/New_York",
                ORDTOOL_ENVIRONMENT="production",
                ORDTOOL_CUSTOMER_SERVICE_URL=customers.url,
                ORDTOOL_CUSTOMER_SERVICE_KEY=service_token,
            ),
        )
    except BaseException:
        _stop(customers)
        raise
    yield Stack(customers, orders, {"Authorization": f"Bearer {token}"}, token, service_token)
    _stop(orders)
    _stop(customers)


def _customer(stack: Stack) -> dict[str, Any]:
    body = {"name": "Ada", "email": f"{uuid.uuid4().hex}@example.com", "address": "1 Rd"}
    response = httpx.post(f"{stack.customers.url}/customers", json=body, headers=stack.admin)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _utc(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_the_zones_really_differ(stack: Stack) -> None:
    """Guard for the test below: the two processes do see different local times."""
    zones = {}
    for service in (stack.customers, stack.orders):
        with open(f"/proc/{service.process.pid}/environ", "rb") as environ:
            zones[service.url] = dict(
                item.split(b"=", 1) for item in environ.read().split(b"\0") if b"=" in item
            )[b"TZ"]
    assert sorted(zones.values()) == [b"America/New_York", b"Asia/Tokyo"]


def test_order_across_services_with_utc_timestamps(stack: Stack) -> None:
    before = datetime.now(UTC)
    customer = _customer(stack)
    request_id = f"trace-{uuid.uuid4().hex[:12]}"
    placed = httpx.post(
        f"{stack.orders.url}/orders",
        json={"customer_id": customer["id"], "sku": "BOOK-1", "quantity": 3},
        headers=stack.admin | {"X-Request-ID": request_id},
    )
    after = datetime.now(UTC)
    assert placed.status_code == 201, placed.text
    assert placed.headers["x-request-id"] == request_id
    order = placed.json()
    assert order["customer_check"] == "fresh"

    shown_customer = httpx.get(
        f"{stack.customers.url}/customers/{customer['id']}", headers=stack.admin
    ).json()
    shown_order = httpx.get(f"{stack.orders.url}/orders/{order['id']}", headers=stack.admin).json()
    listed = httpx.get(
        f"{stack.orders.url}/orders", params={"customer_id": customer["id"]}, headers=stack.admin
    ).json()["items"]
    timestamps = [
        customer["created_at"], customer["updated_at"], order["created_at"], order["updated_at"]
    ]
    for moment in timestamps:
        assert before - SKEW <= _utc(moment) <= after + SKEW  # a zone offset would be hours off
    assert shown_customer["created_at"] == customer["created_at"]
    assert shown_order["created_at"] == listed[0]["created_at"] == order["created_at"]
    assert _utc(customer["created_at"]) <= _utc(order["created_at"])

    # The order service passed the request id on to the customer service, whose log has it.
    stack.customers.wait_for_log(
        lambda text: re.search(
            rf"\[{request_id}\] GET /customers/{customer['id']} 200", text
        ) is not None
    )
    line = _json_line(stack.orders, lambda entry: entry.get("request_id") == request_id)
    assert (line["method"], line["path"], line["status"]) == ("POST", "/orders", 201)
    assert before - SKEW <= _utc(line["timestamp"]) <= after + SKEW


def test_unknown_customer_is_422_across_services(stack: Stack) -> None:
    response = httpx.post(
        f"{stack.orders.url}/orders",
        json={"customer_id": 987654, "sku": "BOOK-1", "quantity": 1},
        headers=stack.admin,
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"].startswith("customer 987654 does not exist")


def _json_line(service: Service, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    def matching(text: str) -> list[dict[str, Any]]:
        entries = [json.loads(line) for line in text.splitlines() if line.strip()]
        return [entry for entry in entries if wanted(entry)]

    return matching(service.wait_for_log(lambda text: bool(matching(text))))[0]


def test_logs_hold_no_query_string_and_no_key(stack: Stack) -> None:
    marker = uuid.uuid4().hex[:8]
    httpx.get(
        f"{stack.orders.url}/orders",
        params={"status": "PENDING", "limit": 7, "customer_id": marker.count("a") + 1},
        headers=stack.admin | {"X-Request-ID": f"q-{marker}"},
    )
    httpx.get(
        f"{stack.customers.url}/customers?limit=3&cursor=99",
        headers=stack.admin | {"X-Request-ID": f"q-{marker}"},
    )
    httpx.get(f"{stack.orders.url}/orders", headers={"Authorization": "Bearer ordk_not_a_key"})
    customers_log = stack.customers.wait_for_log(lambda t: f"[q-{marker}] GET /customers 200" in t)
    _json_line(stack.orders, lambda e: e.get("request_id") == f"q-{marker}")
    for text in (customers_log, stack.orders.log_text()):
        assert "limit=" not in text and "cursor=99" not in text and "status=PENDING" not in text
        assert stack.token not in text and stack.service_token not in text
        assert "ordk_not_a_key" not in text
    # Production writes JSON lines only, each with the fields a log pipeline indexes.
    for line in stack.orders.log_text().splitlines():
        entry = json.loads(line)
        assert {"timestamp", "level", "logger", "message", "request_id"} <= entry.keys()
        assert entry["timestamp"].endswith("Z")


def test_body_limit_over_real_sockets(stack: Stack) -> None:
    url = f"{stack.orders.url}/orders"
    headers = stack.admin | {"Content-Type": "application/json"}
    declared = httpx.post(url, content=b"{" + b" " * 20_000 + b"}", headers=headers)
    assert declared.status_code == 413
    assert declared.headers["content-type"] == "application/problem+json"

    def chunks() -> Iterator[bytes]:
        yield b"{"
        for _ in range(64):
            yield b" " * 1024
        yield b"}"

    streamed = httpx.post(url, content=chunks(), headers=headers)
    assert streamed.status_code == 413
    assert httpx.get(f"{stack.orders.url}/healthz").status_code == 200


def test_probes_and_metrics_of_the_real_order_service(stack: Stack) -> None:
    _customer_and_order = httpx.post(
        f"{stack.orders.url}/orders",
        json={"customer_id": _customer(stack)["id"], "sku": "B", "quantity": 1},
        headers=stack.admin,
    )
    assert _customer_and_order.status_code == 201
    ready = httpx.get(f"{stack.orders.url}/readyz")
    assert ready.status_code == 200
    check = ready.json()["checks"]["customer_service"]
    assert check["kind"] == "http" and check["breaker"]["state"] == "closed"
    metrics = httpx.get(f"{stack.orders.url}/metrics", headers=stack.admin)
    assert metrics.status_code == 200
    assert 'ordtool_customer_checks_total{outcome="found"}' in metrics.text
    assert 'ordtool_orders_created_total{outcome="created"}' in metrics.text
    assert httpx.get(f"{stack.customers.url}/metrics").status_code == 401
