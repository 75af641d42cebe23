"""`ordtool up` as an operator runs it: detached and in the foreground, then status and down."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.test_messaging_support import amqp_url, vhost_fixture  # noqa: F401

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def stack_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDTOOL_")}
    return env | {
        "ORDTOOL_DATA_DIR": str(tmp_path / "data"),
        "ORDTOOL_ORDERS_PORT": str(_free_port()),
        "ORDTOOL_CUSTOMERS_PORT": str(_free_port()),
        "ORDTOOL_ENVIRONMENT": "test",
    }


def ordtool(
    env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ordtool", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _urls(env: dict[str, str]) -> tuple[str, str]:
    return (
        f"http://127.0.0.1:{env['ORDTOOL_ORDERS_PORT']}",
        f"http://127.0.0.1:{env['ORDTOOL_CUSTOMERS_PORT']}",
    )


def test_up_detach_serves_authenticated_pair_then_down(stack_env: dict[str, str]) -> None:
    started = ordtool(stack_env, "up", "--detach", "--json")
    assert started.returncode == 0, started.stderr
    report = json.loads(started.stdout)
    key = report["admin_key"]
    key_file = Path(report["admin_key_file"])
    try:
        assert key and key_file.read_text().strip() == key
        assert key_file.stat().st_mode & 0o777 == 0o600
        orders_url, customers_url = _urls(stack_env)
        headers = {"Authorization": f"Bearer {key}"}
        # The order service checks the customer over HTTP with its own key.
        customer = httpx.post(
            f"{customers_url}/customers",
            headers=headers,
            json={"name": "Ada", "email": "ada@example.com", "address": "1 Road"},
        ).json()
        order = httpx.post(
            f"{orders_url}/orders",
            headers=headers,
            json={"customer_id": customer["id"], "sku": "BOOK-1", "quantity": 2},
        )
        assert order.status_code == 201, order.text
        assert httpx.post(f"{orders_url}/orders", json={}).status_code == 401
        unknown = httpx.post(
            f"{orders_url}/orders",
            headers=headers,
            json={"customer_id": 999, "sku": "BOOK-1", "quantity": 2},
        )
        assert unknown.status_code == 422

        status = ordtool(stack_env, "status", "--json")
        assert status.returncode == 0, status.stderr
        assert {
            p["name"]: (p["alive"], p["healthy"], p["ready"]) for p in json.loads(status.stdout)
        } == {"customers": (True, True, True), "orders": (True, True, True)}

        again = ordtool(stack_env, "up", "--detach")
        assert again.returncode == 4 and "already running" in again.stderr

        restarted_key = ordtool(stack_env, "status")
        assert key not in restarted_key.stdout + restarted_key.stderr
    finally:
        stopped = ordtool(stack_env, "down")
    assert stopped.returncode == 0, stopped.stderr
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{_urls(stack_env)[0]}/healthz")
    after = ordtool(stack_env, "status")
    assert after.returncode == 4
    assert after.stderr.count("\n") == 1 and "no stack is running" in after.stderr


def test_up_foreground_stops_everything_on_ctrl_c(stack_env: dict[str, str]) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "ordtool", "up"],
        env=stack_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    orders_url, _ = _urls(stack_env)
    try:
        state_file = Path(stack_env["ORDTOOL_DATA_DIR"]) / "stack.json"
        _wait_until(state_file.exists, 90)  # written once every service answers /healthz
        assert _healthy(orders_url)
        state = json.loads(state_file.read_text())
        children = [entry["pid"] for entry in state]
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert not any(_alive(pid) for pid in children)
    assert not _healthy(orders_url)
    assert not (Path(stack_env["ORDTOOL_DATA_DIR"]) / "stack.json").exists()


def test_second_start_keeps_the_first_admin_key(stack_env: dict[str, str]) -> None:
    first = ordtool(stack_env, "up", "--detach", "--json")
    ordtool(stack_env, "down")
    second = ordtool(stack_env, "up", "--detach", "--json")
    ordtool(stack_env, "down")
    assert first.returncode == second.returncode == 0, second.stderr
    assert json.loads(first.stdout)["admin_key"]
    assert json.loads(second.stdout)["admin_key"] is None  # printed once, on first start only


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _wait_until(condition: object, timeout: float) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_up_with_a_broker_relays_and_audits_every_event(
    stack_env: dict[str, str], vhost: str
) -> None:
    env = stack_env | {"ORDTOOL_AMQP_URL": amqp_url(vhost)}
    started = ordtool(env, "up", "--detach", "--json")
    assert started.returncode == 0, started.stderr
    try:
        names = {p["name"] for p in json.loads(started.stdout)["processes"]}
        assert names == {"customers", "orders", "relay", "audit"}
        orders_url, customers_url = _urls(env)
        headers = {"Authorization": f"Bearer {json.loads(started.stdout)['admin_key']}"}
        customer = httpx.post(f"{customers_url}/customers", headers=headers, json={
            "name": "Ada", "email": "ada@example.com", "address": "1 Road"}).json()
        for quantity in (1, 2, 3):
            placed = httpx.post(f"{orders_url}/orders", headers=headers, json={
                "customer_id": customer["id"], "sku": "BOOK-1", "quantity": quantity})
            assert placed.status_code == 201, placed.text

        verified = ordtool(env, "events", "verify", "--wait", "60", "--json")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        report = json.loads(verified.stdout)
        assert report["lost"] == 0 and report["published"] >= 4  # 1 customer + 3 orders
    finally:
        ordtool(env, "down")
