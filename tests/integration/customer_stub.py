"""A stub customer service on a real port (uvicorn in a thread) whose behaviour a test switches.

It speaks the customer service's contract (GET /customers/{id}: 200 with the customer's JSON,
404 problem details when unknown) and can misbehave on demand, so the HTTP adapter is tested
against real sockets: refused, frozen, slow, trickling, erroring and lying.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

Mode = Literal[
    "normal",  # the contract
    "frozen",  # accepts the request, never answers
    "slow",  # answers correctly after `slow_s`
    "trickle",  # sends the headers, then one body byte every 0.2 s
    "error500",
    "flaky503",  # 503 for the first `fail_first` requests, then normal
    "unauthorized",  # 401 problem details
    "malformed",  # 200 with a body that is not JSON
    "wrong_shape",  # 200 with JSON that is not a customer
    "wrong_id",  # 200 with another customer
]


@dataclass
class StubState:
    mode: Mode = "normal"
    known: set[int] = field(default_factory=lambda: {1, 2, 3})
    slow_s: float = 2.0
    fail_first: int = 0
    requests: int = 0
    headers: list[dict[str, str]] = field(default_factory=list)


def _customer(customer_id: int) -> dict[str, object]:
    return {
        "id": customer_id,
        "name": f"Customer {customer_id}",
        "email": f"c{customer_id}@example.com",
        "address": "1 Test Road",
        "created_at": "2026-12-01T00:00:00Z",
        "updated_at": "2026-12-01T00:00:00Z",
    }


def _problem(status: int, title: str) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": title}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


class StubCustomerService:
    def __init__(self) -> None:
        self.state = StubState()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> int:
        with self._lock:
            return self.state.requests

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))  # 0 the first time; the same port on a restart
        self.port = sock.getsockname()[1]
        self._stopping.clear()
        app = Starlette(routes=[Route("/customers/{customer_id:int}", self._handle)])
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("stub customer service did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        """Close the port: from now on connections are refused."""
        if self._server is None or self._thread is None:
            return
        self._stopping.set()  # releases frozen handlers
        self._server.should_exit = True
        self._server.force_exit = True
        self._thread.join(timeout=10)
        self._server = None

    async def _handle(self, request: Request) -> Response:
        customer_id: int = request.path_params["customer_id"]
        with self._lock:
            self.state.requests += 1
            number = self.state.requests
            self.state.headers.append(dict(request.headers))
        mode = self.state.mode
        if mode == "frozen":
            await self._pause(3600)
            return _problem(503, "stopping")
        if mode == "slow":
            await self._pause(self.state.slow_s)
        if mode == "trickle":
            return StreamingResponse(self._trickle(customer_id), media_type="application/json")
        if mode == "flaky503" and number <= self.state.fail_first:
            return _problem(503, "Service unavailable")
        return self._answer(mode, customer_id)

    def _answer(self, mode: Mode, customer_id: int) -> Response:
        if mode == "error500":
            return _problem(500, "Internal server error")
        if mode == "unauthorized":
            return _problem(401, "Unauthorized")
        if mode == "malformed":
            return Response(b'{"id": 1, "name": ', media_type="application/json")
        if mode == "wrong_shape":
            return JSONResponse([{"customer": _customer(customer_id)}])
        if mode == "wrong_id":
            return JSONResponse(_customer(customer_id + 1000))
        if customer_id not in self.state.known:
            return _problem(404, f"customer {customer_id} does not exist")
        return JSONResponse(_customer(customer_id))

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake up when the stub stops (so stop() never waits for it)."""
        until = time.monotonic() + seconds
        while time.monotonic() < until and not self._stopping.is_set():
            await asyncio.sleep(0.02)

    async def _trickle(self, customer_id: int) -> AsyncIterator[bytes]:
        for byte in str(_customer(customer_id)).encode():
            if self._stopping.is_set():
                return
            yield bytes([byte])
            await asyncio.sleep(0.2)


def closed_port() -> int:
    """A port nothing listens on (bound for a moment, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
