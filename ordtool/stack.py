"""The local stack `ordtool up` runs: its processes, where they listen, how they start and stop.

Each service is a child process (`python -m ordtool serve ...`) so that one crashing, or being
killed by a chaos experiment, never takes the others down. The state file in the data
directory lets `ordtool status` and `ordtool down` find a stack started elsewhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from ordtool.config import Settings
from ordtool.domain.clock import iso_z, utc_now
from ordtool.errors import DependencyUnavailable, OrdtoolError

STATE_FILE = "stack.json"
HEALTH_TIMEOUT_S = 30.0
STOP_GRACE_S = 10.0


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    name: str
    argv: list[str]
    url: str | None  # base URL of an HTTP service, None for workers (the relay)
    env: dict[str, str]


@dataclass(frozen=True, slots=True)
class StackEntry:
    name: str
    pid: int
    url: str | None
    log: str | None
    started_at: str


def customers_url(settings: Settings) -> str:
    return f"http://{settings.host}:{settings.customers_port}"


def orders_url(settings: Settings) -> str:
    return f"http://{settings.host}:{settings.orders_port}"


def stack_specs(settings: Settings, service_key: str | None) -> list[ProcessSpec]:
    """Both services; with a broker, also the outbox relay and the audit consumer (what
    `ordtool events verify` reconciles against)."""
    python = [sys.executable, "-m", "ordtool"]
    orders_env = {"ORDTOOL_CUSTOMER_SERVICE_URL": customers_url(settings)}
    if service_key:
        orders_env["ORDTOOL_CUSTOMER_SERVICE_KEY"] = service_key
    specs = [
        ProcessSpec("customers", [*python, "serve", "customers"], customers_url(settings), {}),
        ProcessSpec("orders", [*python, "serve", "orders"], orders_url(settings), orders_env),
    ]
    if settings.amqp_url is not None:
        specs.append(ProcessSpec("relay", [*python, "events", "relay"], None, {}))
        specs.append(ProcessSpec("audit", [*python, "events", "audit"], None, {}))
    return specs


def start(specs: Sequence[ProcessSpec], log_dir: Path | None) -> list[subprocess.Popen[bytes]]:
    """Start every process; with ``log_dir`` they are detached (own session, output to files),
    without it they share this terminal and its Ctrl-C."""
    return [_spawn(spec, log_dir) for spec in specs]


def _spawn(spec: ProcessSpec, log_dir: Path | None) -> subprocess.Popen[bytes]:
    env = os.environ | spec.env
    if log_dir is None:
        return subprocess.Popen(spec.argv, env=env)  # noqa: S603 - our own argv
    log_dir.mkdir(parents=True, exist_ok=True)
    log: IO[bytes] = (log_dir / f"{spec.name}.log").open("ab")
    with log:
        return subprocess.Popen(  # noqa: S603 - our own argv
            spec.argv, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )


def wait_healthy(
    specs: Sequence[ProcessSpec], processes: Sequence[subprocess.Popen[bytes]],
    timeout_s: float = HEALTH_TIMEOUT_S,
) -> None:
    """Wait until every HTTP service answers /healthz; fail at once if a process exits."""
    deadline = time.monotonic() + timeout_s
    pending = {spec.name: spec for spec in specs if spec.url}
    while pending:
        for spec, process in zip(specs, processes, strict=True):
            if process.poll() is not None:
                raise OrdtoolError(
                    f"{spec.name} exited with code {process.returncode} while starting",
                    hint="see its log (ordtool status shows where), or run ordtool up without "
                    "--detach to watch it",
                )
        for name in [n for n, s in pending.items() if _healthz(s.url)]:
            del pending[name]
        if time.monotonic() > deadline:
            raise DependencyUnavailable(
                f"{', '.join(pending)} did not become healthy within {timeout_s:.0f} s",
                hint="is the port taken? set ORDTOOL_ORDERS_PORT / ORDTOOL_CUSTOMERS_PORT",
            )
        time.sleep(0.2)


def _healthz(url: str | None) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def write_state(
    data_dir: Path, specs: Sequence[ProcessSpec], processes: Sequence[subprocess.Popen[bytes]],
    log_dir: Path | None,
) -> list[StackEntry]:
    now = iso_z(utc_now())
    entries = [
        StackEntry(spec.name, process.pid, spec.url,
                   str(log_dir / f"{spec.name}.log") if log_dir else None, now)
        for spec, process in zip(specs, processes, strict=True)
    ]
    (data_dir / STATE_FILE).write_text(json.dumps([asdict(e) for e in entries], indent=2))
    return entries


def read_state(data_dir: Path) -> list[StackEntry]:
    path = data_dir / STATE_FILE
    if not path.exists():
        return []
    return [StackEntry(**entry) for entry in json.loads(path.read_text())]


def clear_state(data_dir: Path) -> None:
    (data_dir / STATE_FILE).unlink(missing_ok=True)


def is_ours(pid: int) -> bool:
    """A pid from the state file may have been reused: only touch processes running ordtool."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"ordtool" in cmdline


def stop(pids: Sequence[int], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM, then SIGKILL what is still alive after the grace period."""
    alive = [pid for pid in pids if is_ours(pid)]
    for pid in alive:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [pid for pid in alive if is_ours(pid) and not _reaped(pid)]
    for pid in alive:
        _signal(pid, signal.SIGKILL)


def _reaped(pid: int) -> bool:
    """Reap our own exited child (else it lingers as a zombie that still looks alive)."""
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == pid
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except (OSError, IndexError):
        return True


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def probe(entry: StackEntry) -> dict[str, Any]:
    """What `ordtool status` shows for one process: alive, healthy, ready (and why not)."""
    alive = is_ours(entry.pid) and not _is_zombie(entry.pid)
    result: dict[str, Any] = asdict(entry) | {"alive": alive, "healthy": None, "ready": None}
    if alive and entry.url:
        result["healthy"] = _healthz(entry.url)
        result["ready"], result["checks"] = _readyz(entry.url)
    return result


def _readyz(url: str) -> tuple[bool, Any]:
    try:
        response = httpx.get(f"{url}/readyz", timeout=2.0)
    except httpx.HTTPError as exc:
        return False, {"error": type(exc).__name__}
    try:
        body = response.json()
    except ValueError:
        body = None
    return response.status_code == 200, body
