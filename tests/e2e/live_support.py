"""What the live table's end-to-end tests share: a data directory prepared through the real CLI,
and an outbox relay child process for the runs with a broker."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.processes import ok_json


def new_customer(env: dict[str, str]) -> int:
    customer = ok_json(
        ["customers", "create", "--name", "Ada", "--email", "ada@example.com", "--address", "1 Rd"],
        env,
    )
    return int(customer["id"])


def place_via_cli(env: dict[str, str], customer_id: int, sku: str, quantity: int = 2) -> int:
    created = ok_json(
        ["orders", "create", "--customer-id", str(customer_id), "--sku", sku,
         "--quantity", str(quantity)],
        env,
    )
    return int(created["id"])


@contextmanager
def relay_running(env: dict[str, str], directory: Path) -> Iterator[None]:
    """``ordtool events relay`` publishing the outboxes for the block (its log in directory)."""
    with (directory / "relay.log").open("ab") as log:
        relay = subprocess.Popen(
            [sys.executable, "-m", "ordtool", "events", "relay"],
            env=env,
            cwd=directory,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield
    finally:
        relay.terminate()
        try:
            relay.wait(timeout=15)
        except subprocess.TimeoutExpired:
            relay.kill()
            relay.wait()
