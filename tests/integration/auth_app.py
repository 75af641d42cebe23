"""A tiny service built the way the real ones are (``auth.require``, ``idempotent``, problem
details), served by uvicorn on a free port in a thread, over a real App (SQLite or PostgreSQL).

Its POST routes place real orders through the place-order use case; a test steers a request
with headers that are not part of the idempotency fingerprint:
``X-Test-Fail: raise | 503`` and ``X-Test-Hold: <seconds>`` (wait for ``release`` or that long).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

import uvicorn
from fastapi import Depends, FastAPI, Request, Response

from ordtool.bootstrap import App
from ordtool.domain.commands import PlaceOrder, parse_input
from ordtool.domain.events import order_data
from ordtool.services import orders
from ordtool.store.migrate import ServiceDatabase
from ordtool.web import auth, problems
from ordtool.web.idempotency import Outcome, idempotent, raw_body

WriteCaller = Annotated[auth.Caller, Depends(auth.require("orders:write"))]
Body = Annotated[bytes, Depends(raw_body)]


@dataclass
class Probe:
    """What the handlers did, and a gate a test can hold them at."""

    runs: int = 0
    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


def build(app: App, service: ServiceDatabase = "orders") -> tuple[FastAPI, Probe]:
    api = FastAPI()
    api.state.app = app
    api.state.service = service
    problems.install(api)
    probe = Probe()

    @api.get("/things")
    def read(caller: Annotated[auth.Caller, Depends(auth.require("orders:read"))]) -> Any:
        return {"id": caller.id, "name": caller.name, "scopes": sorted(caller.scopes)}

    @api.get("/customers-only")
    def customers_only(
        caller: Annotated[auth.Caller, Depends(auth.require("customers:read"))],
    ) -> Any:
        return {"id": caller.id}

    def place(request: Request, body: bytes) -> Outcome:
        with probe.lock:
            probe.runs += 1
        probe.entered.set()
        hold = request.headers.get("x-test-hold")
        if hold:
            probe.release.wait(float(hold))
        failure = request.headers.get("x-test-fail")
        if failure == "raise":
            raise RuntimeError("the handler failed")
        if failure == "503":
            return 503, {"detail": "try later"}, {"Retry-After": "1"}
        command = parse_input(PlaceOrder, json.loads(body))
        placed = orders.place_order(app.orders_uow, app.customer_directory, command)
        return 201, order_data(placed.order), {"Location": f"/orders/{placed.order.id}"}

    @api.post("/orders")
    def create(request: Request, body: Body, caller: WriteCaller) -> Response:
        return idempotent(request, caller, "POST /orders", body, lambda: place(request, body))

    @api.post("/other")
    def other(request: Request, body: Body, caller: WriteCaller) -> Response:
        return idempotent(request, caller, "POST /other", body, lambda: place(request, body))

    return api, probe


@contextmanager
def serving(api: FastAPI) -> Iterator[str]:
    """Serve ``api`` on 127.0.0.1:<free port> in a thread; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(api, log_level="warning", lifespan="off", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()
