"""``ordtool orders watch`` in a pseudo-terminal: it shows orders placed and changed by other
processes as they happen, with or without a broker, and Ctrl-C ends it cleanly."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest

from tests.conftest import AMQP_URL, require_service
from tests.processes import ok_json, ordtool_env

WAIT_S = 30.0  # an upper bound for "it shows up", not a latency requirement
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


class Terminal:
    """A child ``ordtool`` with a pseudo-terminal as its controlling terminal (so Ctrl-C is
    a real SIGINT from the terminal, and Rich draws its live display)."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        env = env | {"COLUMNS": "150", "LINES": "40", "TERM": "xterm-256color"}
        argv = [sys.executable, "-m", "ordtool", *args]
        pid, fd = pty.fork()
        if pid == 0:  # the child: become ordtool
            os.chdir(cwd)
            os.execve(sys.executable, argv, env)
        self.pid, self._fd = pid, fd
        self._output = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except OSError:  # the child closed the terminal
                return
            if not chunk:
                return
            self._output.extend(chunk)

    def text(self) -> str:
        return ANSI.sub("", self._output.decode(errors="replace"))

    def wait_for(self, pattern: str, since: int = 0) -> int:
        """Wait until ``pattern`` (a regex) shows after character ``since``; its end offset."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            found = re.compile(pattern).search(self.text(), since)
            if found:
                return found.end()
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} never showed; the terminal had:\n{self.text()[-3000:]}")

    def ctrl_c(self) -> None:
        os.write(self._fd, b"\x03")

    def exit_code(self, timeout: float = WAIT_S) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._reader.join(timeout=5)
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"watch did not exit; the terminal had:\n{self.text()[-3000:]}")

    def kill(self) -> None:
        try:
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def prepare(data_dir: Path, **extra_env: str) -> tuple[dict[str, str], int]:
    env = ordtool_env(**extra_env) | {"ORDTOOL_DATA_DIR": str(data_dir)}
    customer = ok_json(
        ["customers", "create", "--name", "Ada", "--email", "ada@example.com", "--address", "1 Rd"],
        env,
    )
    return env, int(customer["id"])


def place(env: dict[str, str], customer_id: int, sku: str) -> int:
    created = ok_json(
        ["orders", "create", "--customer-id", str(customer_id), "--sku", sku, "--quantity", "2"],
        env,
    )
    return int(created["id"])


def row(order_id: int, sku: str, status: str) -> str:
    """A table row of the order, as Rich draws it (cells separated by box characters)."""
    return rf"│\s*{order_id}\s*│\s*\d+\s*│\s*{re.escape(sku)}\s*│\s*2\s*│\s*{status}\s*│"


def test_watch_shows_orders_from_another_process_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    env, customer_id = prepare(tmp_path)
    old = place(env, customer_id, "OLD-1")
    terminal = Terminal(["orders", "watch", "--limit", "5"], env, tmp_path)
    try:
        seen = terminal.wait_for(row(old, "OLD-1", "PENDING"))
        terminal.wait_for(r"● live · orders outbox", seen)

        new = place(env, customer_id, "WATCH-1")
        seen = terminal.wait_for(row(new, "WATCH-1", "PENDING"), seen)
        ok_json(["orders", "set-status", str(new), "COMPLETED"], env)
        terminal.wait_for(row(new, "WATCH-1", "COMPLETED"), seen)

        terminal.ctrl_c()
        assert terminal.exit_code() == 0
        assert "error" not in terminal.text().split("Ctrl-C to stop")[-1]
    finally:
        terminal.kill()


def test_watch_with_a_status_filter_stops_after_its_timeout(tmp_path: Path) -> None:
    env, customer_id = prepare(tmp_path)
    done = place(env, customer_id, "DONE-1")
    ok_json(["orders", "set-status", str(done), "FAILED"], env)
    pending = place(env, customer_id, "OPEN-1")
    terminal = Terminal(
        ["orders", "watch", "--status", "PENDING", "--timeout", "3"], env, tmp_path
    )
    try:
        terminal.wait_for(row(pending, "OPEN-1", "PENDING"))
        assert terminal.exit_code() == 0
        assert "DONE-1" not in terminal.text()
    finally:
        terminal.kill()


def test_watch_refuses_a_bad_limit_with_one_line_and_exit_2(tmp_path: Path) -> None:
    env = ordtool_env() | {"ORDTOOL_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "ordtool", "orders", "watch", "--limit", "0"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: limit must be a whole number from 1 to 500")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.fixture
def broker_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A broker topology of this test's own and a relay publishing the outbox to it."""
    require_service("RabbitMQ", "127.0.0.1", 5672)
    exchange = f"test.watch.{uuid.uuid4().hex[:12]}"
    env = ordtool_env(ORDTOOL_AMQP_URL=AMQP_URL, ORDTOOL_EVENTS__EXCHANGE=exchange) | {
        "ORDTOOL_DATA_DIR": str(tmp_path)
    }
    with (tmp_path / "relay.log").open("wb") as relay_log:
        relay = subprocess.Popen(
            [sys.executable, "-m", "ordtool", "events", "relay"],
            env=env,
            cwd=tmp_path,
            stdout=relay_log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield env
    finally:
        relay.terminate()
        relay.wait(timeout=15)
        connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        channel = connection.channel()
        for leftover in (f"{exchange}.audit", f"{exchange}.dead-letter"):
            channel.queue_delete(leftover)
        for declared in (exchange, f"{exchange}.dlx"):
            channel.exchange_delete(declared)
        connection.close()


def test_watch_follows_the_broker_when_one_is_configured(
    tmp_path: Path, broker_env: dict[str, str]
) -> None:
    customer = ok_json(
        ["customers", "create", "--name", "Ada", "--email", "ada@example.com", "--address", "1 Rd"],
        broker_env,
    )
    terminal = Terminal(["orders", "watch"], broker_env, tmp_path)
    try:
        seen = terminal.wait_for(r"● live · broker")
        new = place(broker_env, int(customer["id"]), "BROKER-1")
        terminal.wait_for(row(new, "BROKER-1", "PENDING"), seen)
        terminal.ctrl_c()
        assert terminal.exit_code() == 0
    finally:
        terminal.kill()
