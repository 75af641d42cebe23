"""The customer service: create, show, list, update and delete customers over JSON.

Request bodies and parameters are the domain's command models, so the HTTP API and the CLI
accept and refuse exactly the same input with the same messages.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Response

from ordtool.bootstrap import App
from ordtool.domain.commands import CreateCustomer, Page, UpdateCustomer
from ordtool.domain.events import customer_data
from ordtool.domain.values import PositiveId
from ordtool.services import customers as use_cases
from ordtool.web import schemas, service
from ordtool.web.auth import Caller, require
from ordtool.web.idempotency import Outcome
from ordtool.web.service import AppDep, Posted, RequestId

router = APIRouter(prefix="/customers", tags=["customers"], responses=schemas.COMMON)

CustomerId = Annotated[PositiveId, Path(description="The customer's id.")]
Reader = Annotated[Caller, Depends(require("customers:read"))]
Writer = Annotated[Caller, Depends(require("customers:write"))]


@router.post(
    "",
    status_code=201,
    summary="Create a customer (Idempotency-Key supported)",
    response_model=None,
    responses=schemas.documented(201, schemas.CustomerOut, "created; Location names it")
    | schemas.problems(400, 409, 413),
)
def create_customer(body: CreateCustomer, caller: Writer, app: AppDep, post: Posted) -> Response:
    def handler() -> Outcome:
        customer = use_cases.create_customer(app.customers_uow, body, post.request_id)
        return 201, customer_data(customer), {"Location": f"/customers/{customer.id}"}

    return post.once(caller, "POST /customers", handler)


@router.get(
    "",
    summary="List customers, newest first (cursor pagination)",
    response_model=None,
    responses=schemas.documented(200, schemas.CustomerPage, "a page of customers"),
)
def list_customers(page: Annotated[Page, Query()], _: Reader, app: AppDep) -> dict[str, Any]:
    found = use_cases.list_customers(app.customers_uow, page)
    return service.page_body(
        [customer_data(c) for c in found], [c.id for c in found], page.limit
    )


@router.get(
    "/{customer_id}",
    summary="Show one customer",
    response_model=None,
    responses=schemas.documented(200, schemas.CustomerOut, "the customer")
    | schemas.problems(404),
)
def show_customer(customer_id: CustomerId, _: Reader, app: AppDep) -> dict[str, Any]:
    return customer_data(use_cases.get_customer(app.customers_uow, customer_id))


@router.patch(
    "/{customer_id}",
    summary="Change a customer's name and/or address",
    response_model=None,
    responses=schemas.documented(200, schemas.CustomerOut, "the customer as it is now")
    | schemas.problems(404, 413),
)
def update_customer(
    customer_id: CustomerId,
    body: UpdateCustomer,
    _: Writer,
    app: AppDep,
    request_id: RequestId,
) -> dict[str, Any]:
    updated = use_cases.update_customer(app.customers_uow, customer_id, body, request_id)
    return customer_data(updated)


@router.delete(
    "/{customer_id}",
    status_code=204,
    summary="Delete a customer",
    responses=schemas.problems(404),
)
def delete_customer(
    customer_id: CustomerId, _: Writer, app: AppDep, request_id: RequestId
) -> Response:
    use_cases.delete_customer(app.customers_uow, customer_id, request_id)
    return Response(status_code=204)


def create_app(app: App) -> FastAPI:
    return service.build(
        app,
        "customers",
        router,
        title="ordtool customer service",
        about="Customers of the order system.",
    )
