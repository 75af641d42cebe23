"""Response shapes for the OpenAPI document (/docs) only.

The routes return ``customer_data``/``order_data`` dicts, the one JSON shape the CLI and the
events share; these models describe them to clients and are never used to build or check a
response at run time (that would cost a validation per request for nothing).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from ordtool.web.problems import PROBLEM_JSON


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(examples=["urn:ordtool:problem:invalid-input"])
    title: str = Field(examples=["Invalid input"])
    status: int = Field(examples=[422])
    detail: str = Field(examples=["quantity must be a whole number from 1 to 10000, got 0"])
    instance: str = Field(examples=["/orders"])
    request_id: str | None = None
    hint: str | None = None
    errors: list[dict[str, Any]] | None = Field(
        None, description="invalid input: one {field, message} per problem"
    )


class CustomerOut(BaseModel):
    id: int
    name: str
    email: str
    address: str
    created_at: str = Field(examples=["2026-12-03T17:30:18.866652Z"])
    updated_at: str = Field(examples=["2026-12-03T17:30:18.866652Z"])


class OrderOut(BaseModel):
    id: int
    customer_id: int
    sku: str
    quantity: int
    status: Literal["PENDING", "COMPLETED", "FAILED"]
    created_at: str = Field(examples=["2026-12-03T17:30:18.866652Z"])
    updated_at: str = Field(examples=["2026-12-03T17:30:18.866652Z"])


class PlacedOrderOut(OrderOut):
    customer_check: Literal["fresh", "stale"] = Field(
        description="stale: accepted on a cached answer while the customer service was down"
    )


class StatusChangeOut(OrderOut):
    changed: bool = Field(description="false: the order already had that status (a no-op)")


class CustomerPage(BaseModel):
    items: list[CustomerOut]
    next_cursor: int | None = Field(description="pass as ?cursor= for the next page")


class OrderPage(BaseModel):
    items: list[OrderOut]
    next_cursor: int | None = Field(description="pass as ?cursor= for the next page")


def documented(status: int, model: type[BaseModel], description: str) -> dict[int | str, Any]:
    return {status: {"model": model, "description": description}}


def problems(*statuses: int) -> dict[int | str, Any]:
    """OpenAPI entries for error answers, all problem details."""
    schema = Problem.model_json_schema()  # inline: FastAPI's "model" would say application/json
    return {
        status: {"description": _MEANING[status], "content": {PROBLEM_JSON: {"schema": schema}}}
        for status in statuses
    }


_MEANING = {
    400: "malformed request (e.g. a bad Idempotency-Key)",
    401: "no, unknown or revoked key",
    403: "the key lacks the scope",
    404: "no such resource",
    409: "conflict: existing email, forbidden status transition, request in progress",
    413: "body over 16 KiB",
    422: "invalid input; the detail says what to fix",
    429: "over the key's rate limit (Retry-After)",
    503: "a dependency is unavailable (Retry-After)",
}

# What any authenticated route may answer.
COMMON = problems(401, 403, 422, 429)
