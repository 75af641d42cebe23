"""ordtool serve / up / status / down: run the services and the local stack."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
import uvicorn

from ordtool import stack
from ordtool.cli import shared
from ordtool.errors import CheckFailed


class Service(StrEnum):
    orders = "orders"
    customers = "customers"


def serve(
    service: Annotated[Service, typer.Argument(help="Which service to run.")],
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000 orders, 8001 customers).",
                                             min=1, max=65535)] = None,
) -> None:
    """Run one service in the foreground (uvicorn) until Ctrl-C.

    Example: ordtool serve customers --port 8001
    """
    from ordtool.logs import configure_logging, uvicorn_log_config

    settings = shared.app().settings
    configure_logging(settings)
    default_port = settings.orders_port if service is Service.orders else settings.customers_port
    uvicorn.run(
        f"ordtool.web.asgi:{service.value}", factory=True, host=host or settings.host,
        port=port or default_port, log_config=uvicorn_log_config(settings), access_log=False,
        proxy_headers=False, server_header=False,
    )


def up(
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Run in the background; "
                                         "logs go to files in the data directory.")] = False,
    json_output: shared.JsonFlag = False,
) -> None:
    """Start the whole stack: customer service, order service (and the event relay when
    ORDTOOL_AMQP_URL is set). Foreground until Ctrl-C, or --detach.

    Example: ordtool up --detach && ordtool status && ordtool down
    """
    from ordtool.services.keys import ensure_admin_key, ensure_service_key

    app = shared.app()
    settings = app.settings
    _refuse_if_running(settings.data_dir)
    admin_key = ensure_admin_key(app, settings.data_dir / "admin.key")
    specs = stack.stack_specs(settings, ensure_service_key(app, settings.data_dir / "service.key"))
    log_dir = settings.data_dir / "logs" if detach else None
    processes = stack.start(specs, log_dir)
    try:
        stack.wait_healthy(specs, processes)
    except BaseException:
        stack.stop([p.pid for p in processes])
        raise
    entries = stack.write_state(settings.data_dir, specs, processes, log_dir)
    _announce(entries, admin_key, settings.data_dir, json_output)
    if not detach:
        _supervise(specs, processes, settings.data_dir)


def _refuse_if_running(data_dir: Path) -> None:
    running = [e for e in stack.read_state(data_dir) if stack.is_ours(e.pid)]
    if running:
        raise CheckFailed(
            f"a stack is already running from {data_dir} (pids "
            f"{', '.join(str(e.pid) for e in running)})",
            hint="see it with ordtool status, stop it with ordtool down",
        )


def _announce(
    entries: Sequence[stack.StackEntry], admin_key: str | None, data_dir: Path,
    json_output: bool,
) -> None:
    if json_output:
        shared.print_json({"processes": [asdict(e) for e in entries],
                           "admin_key": admin_key, "admin_key_file": str(data_dir / "admin.key")})
        return
    shared.print_table("ordtool stack", ["process", "pid", "url", "log"],
                       [[e.name, str(e.pid), e.url or "-", e.log or "this terminal"]
                        for e in entries])
    if admin_key:
        shared.console.print(
            f"admin key (shown once, also saved to {data_dir / 'admin.key'}):\n{admin_key}",
            highlight=False, soft_wrap=True)
    else:
        shared.note(f"admin key: in {data_dir / 'admin.key'}")


def _supervise(
    specs: Sequence[stack.ProcessSpec], processes: Sequence[subprocess.Popen[bytes]],
    data_dir: Path,
) -> None:
    """Wait for Ctrl-C or SIGTERM, or for a child to die; then stop everything cleanly."""
    def on_term(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    exited = None
    try:
        while exited is None:
            time.sleep(0.3)
            exited = next((s for s, p in zip(specs, processes, strict=True)
                           if p.poll() is not None), None)
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop([p.pid for p in processes if p.poll() is None])
        stack.clear_state(data_dir)
    if exited is not None:
        raise CheckFailed(f"{exited.name} exited unexpectedly; the stack was stopped",
                          hint="see the output above")
    shared.note("stack stopped")


def status(json_output: shared.JsonFlag = False) -> None:
    """Show each process of a running stack: alive, healthy, ready. Exit 4 if any is not.

    Example: ordtool status --json
    """
    data_dir = shared.app().settings.data_dir
    probes = [stack.probe(entry) for entry in stack.read_state(data_dir)]
    if not probes:
        raise CheckFailed(f"no stack is running from {data_dir}", hint="start it with ordtool up")
    if json_output:
        shared.print_json(probes)
    else:
        shared.print_table("ordtool stack", ["process", "pid", "url", "alive", "healthy", "ready"],
                           [[p["name"], str(p["pid"]), p["url"] or "-", _yes(p["alive"]),
                             _yes(p["healthy"]), _yes(p["ready"])] for p in probes])
    if not all(p["alive"] and p["healthy"] is not False and p["ready"] is not False
               for p in probes):
        raise CheckFailed("part of the stack is down or not ready", hint="see the table above")


def _yes(value: bool | None) -> str:
    return "-" if value is None else ("[green]yes[/]" if value else "[red]no[/]")


def down() -> None:
    """Stop a stack started with ordtool up --detach.

    Example: ordtool down
    """
    data_dir = shared.app().settings.data_dir
    entries = stack.read_state(data_dir)
    stack.stop([entry.pid for entry in entries])
    stack.clear_state(data_dir)
    shared.note(f"stopped {len(entries)} processes" if entries else "no stack was running")
