"""``Idempotency-Key`` on POST: a retried request gets the first one's response, not a second
order. Keys are scoped to (caller, route) and kept ``ORDTOOL_AUTH__IDEMPOTENCY_TTL_S`` (24 h).

Call from a *sync* route (SQLAlchemy is sync; FastAPI runs it in its thread pool)::

    @router.post("/orders", status_code=201)
    def create_order(
        request: Request,
        body: Annotated[bytes, Depends(raw_body)],   # the request's bytes, as sent
        caller: Annotated[Caller, Depends(require("orders:write"))],
    ) -> Response:
        def handler() -> tuple[int, Any, dict[str, str]]:
            placed = place_order(...)                 # may raise OrdtoolError
            return 201, order_json(placed), {"Location": f"/orders/{placed.order.id}"}
        return idempotent(request, caller, "POST /orders", body, handler)

Semantics (the IETF httpapi idempotency-key draft):

- no header: the handler runs as usual;
- first request with a key: a "running" row is inserted (its primary key is the lock, so of
  two concurrent requests exactly one runs the handler), then the status and body are stored;
- a retry with the same key and the same body (compared as canonical JSON): the stored status,
  body and headers again, plus ``Idempotent-Replayed: true``;
- the same key with a different body: 422; while the first request is still running: 409
  with Retry-After;
- the handler raises, or answers 5xx: the row is removed, so the client may retry. An error the
  app renders as a 4xx (an OrdtoolError such as UnknownCustomer) is stored and replayed;
- rows older than the TTL are ignored, replaced and purged (at most once a minute).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from ordtool.bootstrap import App
from ordtool.domain.clock import utc_now
from ordtool.metrics import IDEMPOTENCY_OUTCOMES
from ordtool.services.ports import IdempotencyStore, StoredResponse
from ordtool.web.auth import Caller
from ordtool.web.problems import problem

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 200
PURGE_INTERVAL_S = 60.0
# Response headers worth replaying; the rest (date, request id, length) belong to each response.
_KEPT_HEADERS = ("content-type", "location", "retry-after", "x-customer-check")

Outcome = tuple[int, Any, dict[str, str]]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Stored:
    status: int
    body: str
    headers: dict[str, str]

    def encode(self) -> str:
        return json.dumps({"body": self.body, "headers": self.headers}, separators=(",", ":"))

    @classmethod
    def decode(cls, status: int, text: str) -> _Stored:
        data = json.loads(text)
        return cls(status, data["body"], data["headers"])

    def response(self, *extra: tuple[str, str]) -> Response:
        response = Response(self.body, status_code=self.status, headers=self.headers)
        for name, value in extra:
            response.headers[name] = value
        return response


async def raw_body(request: Request) -> bytes:
    """A dependency giving a sync route the request's bytes (FastAPI caches them, so a parsed
    body parameter on the same route costs no second read)."""
    return await request.body()


def idempotent(
    request: Request, caller: Caller, route: str, body: bytes, handler: Callable[[], Outcome]
) -> Response:
    """Run ``handler`` once per (caller, route, Idempotency-Key); see the module docstring.

    ``handler`` returns (status, JSON-ready payload, extra headers) and may raise; ``body`` is
    the raw request body, so that a retry is recognised whatever its key order or spacing.
    """
    key = request.headers.get(HEADER)
    if key is None:
        return json_response(handler())
    if not _valid_key(key):
        return problem(
            400,
            "Bad Request",
            f"{HEADER} must be 1-{MAX_KEY_LENGTH} visible ASCII characters, e.g. a UUID",
            instance=request.url.path,
        )
    app: App = request.app.state.app
    settings = app.settings.auth
    store = app.idempotency_store(request.app.state.service)
    scope = (_caller_key(caller.id), route, key)
    request_hash = _request_hash(body)
    now = utc_now()
    held = store.claim(
        scope,
        request_hash,
        now,
        expired_before=now - timedelta(seconds=settings.idempotency_ttl_s),
        abandoned_before=now - timedelta(seconds=settings.idempotency_lock_s),
    )
    _maybe_purge(app, store, request.app.state.service)
    if held is not None:
        return _answer_held(request, held, request_hash)
    return _run_and_store(request, store, scope, handler)


def _answer_held(request: Request, held: StoredResponse, request_hash: str) -> Response:
    if held.request_hash != request_hash:
        IDEMPOTENCY_OUTCOMES.labels(outcome="mismatch").inc()
        return problem(
            422,
            "Idempotency key reused",
            f"this {HEADER} was already used with a different request body; "
            "use a new key for a new request",
            instance=request.url.path,
            type_="urn:ordtool:problem:idempotency-key-reused",
        )
    if held.status_code is None or held.body is None:
        IDEMPOTENCY_OUTCOMES.labels(outcome="in_progress").inc()
        return problem(
            409,
            "Request in progress",
            f"a request with this {HEADER} is still being processed; retry shortly",
            instance=request.url.path,
            type_="urn:ordtool:problem:request-in-progress",
            headers={"Retry-After": "1"},
        )
    IDEMPOTENCY_OUTCOMES.labels(outcome="replayed").inc()
    stored = _Stored.decode(held.status_code, held.body)
    return stored.response((REPLAYED_HEADER, "true"))


def _run_and_store(
    request: Request,
    store: IdempotencyStore,
    scope: tuple[str, str, str],
    handler: Callable[[], Outcome],
) -> Response:
    try:
        response = json_response(handler())
    except Exception as exc:
        rendered = _rendered_client_error(request, exc)
        if rendered is None:
            _release(store, scope)
            raise
        response = rendered
    if response.status_code >= 500:
        _release(store, scope)
        return response
    stored = _Stored(
        response.status_code,
        bytes(response.body).decode("utf-8"),
        {name: response.headers[name] for name in _KEPT_HEADERS if name in response.headers},
    )
    try:
        store.complete(scope, stored.status, stored.encode())
    except Exception:
        # The work is done (an order may exist): the client must get its answer. The key stays
        # "running", so a retry gets 409 until idempotency_lock_s frees it.
        log.warning("could not store the response for an Idempotency-Key", exc_info=True)
        return response
    IDEMPOTENCY_OUTCOMES.labels(outcome="stored").inc()
    return response


def _release(store: IdempotencyStore, scope: tuple[str, str, str]) -> None:
    IDEMPOTENCY_OUTCOMES.labels(outcome="released").inc()
    store.release(scope)


def _rendered_client_error(request: Request, exc: Exception) -> Response | None:
    """The app's own rendering of ``exc`` when it is a 4xx, so that the replay is identical to
    the first answer; None for anything else (a 5xx, or no handler for it)."""
    handlers: dict[Any, Any] = request.app.exception_handlers
    handler = next((handlers[k] for k in type(exc).__mro__ if k in handlers), None)
    if handler is None or inspect.iscoroutinefunction(handler):
        return None
    response = handler(request, exc)
    if not isinstance(response, Response) or not 400 <= response.status_code < 500:
        return None
    return response


def json_response(outcome: Outcome) -> Response:
    """The handler's outcome as a response; its payload is JSON-ready already (plain dicts,
    strings and numbers), so it skips FastAPI's jsonable_encoder walk."""
    status, payload, headers = outcome
    return JSONResponse(payload, status_code=status, headers=headers)


def _valid_key(key: str) -> bool:
    return 0 < len(key) <= MAX_KEY_LENGTH and all("!" <= char <= "~" for char in key)


def _caller_key(caller_id: str) -> str:
    # The column holds 64 characters; a long JWT subject is hashed to fit.
    if len(caller_id) <= 64:
        return caller_id
    return "sha256:" + hashlib.sha256(caller_id.encode()).hexdigest()[:57]


def _request_hash(body: bytes) -> str:
    """SHA-256 of the canonical JSON (sorted keys, no spaces), or of the bytes if not JSON."""
    try:
        canonical = json.dumps(
            json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")
    except (ValueError, UnicodeDecodeError):
        canonical = body
    return hashlib.sha256(canonical).hexdigest()


_purged: dict[tuple[int, str], float] = {}
_purge_lock = threading.Lock()


def _maybe_purge(app: App, store: IdempotencyStore, service: str) -> None:
    now = time.monotonic()
    with _purge_lock:
        slot = (id(app), service)
        last = _purged.get(slot)
        if last is not None and now - last < PURGE_INTERVAL_S:
            return
        _purged[slot] = now
    moment = utc_now()
    auth = app.settings.auth
    store.purge(
        moment - timedelta(seconds=auth.idempotency_ttl_s),
        moment - timedelta(seconds=auth.idempotency_lock_s),
    )
