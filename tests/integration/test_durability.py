"""A committed order survives the process that wrote it being killed with SIGKILL.

The child runs the real CLI command in-process, prints its JSON, and then hangs with its
database connections still open: no dispose, no WAL checkpoint, no atexit. The parent kills it
as soon as the line is out and reads the order back from a fresh connection.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys

from ordtool.bootstrap import App
from ordtool.domain.commands import CreateCustomer
from ordtool.services import customers, orders
from tests.processes import CLI_TIMEOUT_S, ordtool_env

CHILD = """
import sys, time
from ordtool.cli.main import app
args = ["orders", "create", "--customer-id", sys.argv[1], "--sku", "DURABLE-1", "--quantity", "3",
        "--json"]
app(args, standalone_mode=False)
sys.stdout.write("\\x00printed\\n")
sys.stdout.flush()
time.sleep(600)
"""


def test_a_committed_order_survives_sigkill(any_app: App) -> None:
    customer = customers.create_customer(
        any_app.customers_uow,
        CreateCustomer(name="Dura Ble", email="durable@example.com", address="1 Rock Rd"),
    )
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(customer.id)],
        env=ordtool_env(any_app.settings),
        cwd=any_app.settings.data_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        printed = []
        for line in child.stdout:
            if line.startswith("\x00printed"):
                break
            printed.append(line)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=CLI_TIMEOUT_S)
    finally:
        child.kill()
    assert child.returncode == -signal.SIGKILL, child.stderr.read() if child.stderr else ""
    shown = json.loads("".join(printed))

    fresh = App(any_app.settings)  # new engines: nothing cached from before the kill
    try:
        order = orders.get_order(fresh.orders_uow, shown["id"])
    finally:
        fresh.close()
    assert (order.customer_id, order.sku, order.quantity) == (customer.id, "DURABLE-1", 3)
    assert order.status.value == shown["status"] == "PENDING"
