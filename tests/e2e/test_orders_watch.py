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
from pathlib import Path

from tests.e2e.live_support import new_customer, place_via_cli, relay_running
from tests.integration.test_messaging_support import amqp_url, vhost_fixture  # noqa: F401
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
    return env, new_customer(env)


def place(env: dict[str, str], customer_id: int, sku: str) -> int:
    return place_via_cli(env, customer_id, sku)


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


def test_watch_follows_the_broker_when_one_is_configured(tmp_path: Path, vhost: str) -> None:
    env, customer_id = prepare(tmp_path, ORDTOOL_AMQP_URL=amqp_url(vhost))
    with relay_running(env, tmp_path):
        terminal = Terminal(["orders", "watch"], env, tmp_path)
        try:
            seen = terminal.wait_for(r"● live · broker")
            new = place(env, customer_id, "BROKER-1")
            terminal.wait_for(row(new, "BROKER-1", "PENDING"), seen)
            terminal.ctrl_c()
            assert terminal.exit_code() == 0
        finally:
            terminal.kill()
