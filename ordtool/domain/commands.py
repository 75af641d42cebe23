"""Commands and queries: the validated input of every use case.

The CLI, the HTTP apps and the seeder all build these, so one set of rules (and messages)
guards every edge. ``extra='forbid'`` makes a misspelt field an error instead of a silent drop.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ordtool.domain.orders import OrderStatus
from ordtool.domain.values import (
    Address,
    Email,
    Name,
    PositiveId,
    Quantity,
    Sku,
    UtcDatetime,
    whole_number,
)
from ordtool.errors import InvalidInput

MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50


def _status(value: Any) -> OrderStatus:
    try:
        return OrderStatus.parse(value)
    except InvalidInput as exc:
        raise ValueError(str(exc)) from None


Status = Annotated[OrderStatus, BeforeValidator(_status)]


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ById(Command):
    id: PositiveId


class CreateCustomer(Command):
    name: Name
    email: Email
    address: Address


class UpdateCustomer(Command):
    name: Name | None = None
    address: Address | None = None


class PlaceOrder(Command):
    customer_id: PositiveId
    sku: Sku
    quantity: Quantity


class ChangeOrderStatus(Command):
    order_id: PositiveId
    status: Status


class Page(Command):
    limit: int = Field(default=DEFAULT_PAGE_SIZE)
    cursor: PositiveId | None = None

    @field_validator("limit", mode="before")
    @classmethod
    def _limit(cls, value: Any) -> int:
        # The same rule as quantities: str.isdigit() would let '²' and 5,000-digit numbers
        # through to int(), whose own error message then reached the user.
        return whole_number(value, "limit", 1, MAX_PAGE_SIZE)


class OrderQuery(Page):
    customer_id: PositiveId | None = None
    status: Status | None = None
    since: UtcDatetime | None = None
    until: UtcDatetime | None = None

    @model_validator(mode="after")
    def _window(self) -> OrderQuery:
        if self.since and self.until and self.since > self.until:
            raise ValueError("since must be before until")
        return self


CommandT = TypeVar("CommandT", bound=BaseModel)


def parse_input(model: type[CommandT], raw: dict[str, Any]) -> CommandT:
    """Validate raw input into ``model``; any problem becomes one InvalidInput line."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(describe(exc)) from None


def describe(exc: ValidationError) -> str:
    """One line naming every bad field and what is wrong with it."""
    return "; ".join(describe_error(error) for error in exc.errors())


def describe_error(error: Any) -> str:
    """One pydantic error (a dict with loc, type, msg) as ``field: what is wrong``; the HTTP
    apps use it for FastAPI's validation errors so they read like the CLI's."""
    field = ".".join(str(part) for part in error["loc"]) or "input"
    kind = error["type"]
    if kind == "missing":
        return f"{field} is required"
    if kind == "extra_forbidden":
        return f"{field} is not a known field"
    message = str(error["msg"]).removeprefix("Value error, ")
    return message if message.split(" ", 1)[0] in field.split(".")[-1:] else f"{field}: {message}"
