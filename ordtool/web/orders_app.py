"""The order service: place orders, list and show them, change their status.

Placing an order asks the customer directory (the customer service over HTTP, with deadline,
breaker and cache) before anything is written. An order accepted on a cached answer while the
customer service could not be asked says so: ``"customer_check": "stale"`` in the body and
``X-Customer-Check: stale`` in the headers.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ordtool.bootstrap import App
from ordtool.domain.commands import ChangeOrderStatus, Command, OrderQuery, PlaceOrder, Status
from ordtool.domain.events import order_data
from ordtool.domain.values import PositiveId
from ordtool.errors import DependencyUnavailable, UnknownCustomer
from ordtool.metrics import ORDERS_CREATED
from ordtool.services import orders as use_cases
from ordtool.services.orders import PlacedOrder
from ordtool.web import problems, schemas, service
from ordtool.web.auth import Caller, require
from ordtool.web.idempotency import Outcome, json_response
from ordtool.web.live import mount_live
from ordtool.web.service import AppDep, Posted, RequestId

CUSTOMER_CHECK_HEADER = "X-Customer-Check"
PLACE_ORDER = "place_order"  # the route's name, so the validation handler can count it
STOP_TIMEOUT_S = 5.0  # how long shutdown waits for the customer-events consumer

router = APIRouter(prefix="/orders", tags=["orders"], responses=schemas.COMMON)

OrderId = Annotated[PositiveId, Path(description="The order's id.")]
Reader = Annotated[Caller, Depends(require("orders:read"))]
Writer = Annotated[Caller, Depends(require("orders:write"))]


class StatusChange(Command):
    """Body of a status change: PENDING -> COMPLETED or FAILED; the same status is a no-op."""

    status: Status


@router.post(
    "",
    status_code=201,
    name=PLACE_ORDER,
    summary="Place an order (Idempotency-Key supported)",
    response_model=None,
    responses=schemas.documented(201, schemas.PlacedOrderOut, "placed; Location names it")
    | schemas.problems(400, 409, 413, 503),
)
async def place_order(body: PlaceOrder, caller: Writer, app: AppDep, post: Posted) -> Response:
    if not post.idempotent:
        with _counted():
            placed = await app.order_desk.place(body, post.request_id)
        return json_response(_placed(placed))

    def handler() -> Outcome:  # the idempotency store is synchronous: a worker thread
        with _counted():
            placed = app.order_desk.place_blocking(body, post.request_id)
        return _placed(placed)

    return await run_in_threadpool(post.once, caller, "POST /orders", handler)


def _placed(placed: PlacedOrder) -> Outcome:
    check = "stale" if placed.customer_check_stale else "fresh"
    headers = {"Location": f"/orders/{placed.order.id}", CUSTOMER_CHECK_HEADER: check}
    return 201, order_data(placed.order) | {"customer_check": check}, headers


@contextmanager
def _counted() -> Iterator[None]:
    """Count the placement's outcome in ORDERS_CREATED."""
    try:
        yield
    except UnknownCustomer:
        ORDERS_CREATED.labels(outcome="unknown_customer").inc()
        raise
    except DependencyUnavailable:
        ORDERS_CREATED.labels(outcome="unavailable").inc()
        raise
    ORDERS_CREATED.labels(outcome="created").inc()


@router.get(
    "",
    summary="List orders, newest first, with filters and cursor pagination",
    response_model=None,
    responses=schemas.documented(200, schemas.OrderPage, "a page of orders"),
)
def list_orders(
    query: Annotated[OrderQuery, Query()], _: Reader, app: AppDep
) -> dict[str, Any]:
    found = use_cases.list_orders(app.orders_uow, query)
    return service.page_body([order_data(o) for o in found], [o.id for o in found], query.limit)


@router.get(
    "/{order_id}",
    summary="Show one order",
    response_model=None,
    responses=schemas.documented(200, schemas.OrderOut, "the order") | schemas.problems(404),
)
def show_order(order_id: OrderId, _: Reader, app: AppDep) -> dict[str, Any]:
    return order_data(use_cases.get_order(app.orders_uow, order_id))


@router.post(
    "/{order_id}/status",
    summary="Change an order's status (409 if the status machine forbids it)",
    response_model=None,
    responses=schemas.documented(200, schemas.StatusChangeOut, "the order as it is now")
    | schemas.problems(404, 409, 413),
)
def change_status(
    order_id: OrderId, body: StatusChange, _: Writer, app: AppDep, request_id: RequestId
) -> dict[str, Any]:
    command = ChangeOrderStatus(order_id=order_id, status=body.status)
    change = use_cases.change_status(app.orders_uow, command, request_id)
    return order_data(change.order) | {"changed": change.changed}


def _invalid_input(request: Request, exc: Exception) -> JSONResponse:
    """Problem details as usual, counting a refused order under ORDERS_CREATED."""
    if getattr(request.scope.get("route"), "name", None) == PLACE_ORDER:
        ORDERS_CREATED.labels(outcome="invalid").inc()
    return problems.validation_problem(request, exc)


def create_app(app: App) -> FastAPI:
    api = service.build(
        app, "orders", router, title="ordtool order service", about="Orders of the order system."
    )
    api.add_exception_handler(RequestValidationError, _invalid_input)
    mount_live(api, app)  # the live orders page at /, /ws-ticket and /ws/orders
    _follow_customer_events(api, app)
    return api


def _follow_customer_events(api: FastAPI, app: App) -> None:
    """With a broker and a customer service, customer.updated / customer.deleted events drop
    this replica's cached look-up at once, instead of when its fresh TTL runs out. Each
    replica has a private queue, so every replica hears every change."""
    if app.settings.amqp_url is None or not app.settings.customer_service_url:
        return
    consumer = app.events.customer_cache_consumer(app.invalidate_customer)
    api.state.customer_events = consumer

    @asynccontextmanager
    async def consuming() -> AsyncIterator[None]:
        stop = threading.Event()
        thread = app.events.start(consumer, stop)
        try:
            yield
        finally:
            stop.set()
            await asyncio.to_thread(thread.join, STOP_TIMEOUT_S)

    service.also_during_lifespan(api, consuming)
