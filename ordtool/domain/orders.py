"""Orders and the order status machine (design.md section 3)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from ordtool.errors import ForbiddenTransition, InvalidInput


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"

    @classmethod
    def parse(cls, value: Any) -> OrderStatus:
        """Read a status from user input (case-insensitive); anything else lists the choices."""
        text = value.strip().upper() if isinstance(value, str) else value
        try:
            return cls(text)
        except ValueError:
            raise InvalidInput(
                f"unknown order status {value!r}",
                hint=f"use one of {', '.join(allowed_values())}",
            ) from None


def allowed_values() -> list[str]:
    return [status.value for status in OrderStatus]


# PENDING is the only state an order leaves; COMPLETED and FAILED are terminal.
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: frozenset({OrderStatus.COMPLETED, OrderStatus.FAILED}),
    OrderStatus.COMPLETED: frozenset(),
    OrderStatus.FAILED: frozenset(),
}


def check_transition(current: OrderStatus, target: OrderStatus) -> bool:
    """Return True if the status must change, False for a no-op (same status, so retries are
    safe); raise ForbiddenTransition for anything the table does not allow."""
    if current == target:
        return False
    allowed = TRANSITIONS[current]
    if target not in allowed:
        choices = ", ".join(sorted(allowed)) or "none: it is terminal"
        raise ForbiddenTransition(
            f"an order cannot go from {current} to {target}",
            hint=f"allowed from {current}: {choices}",
        )
    return True


@dataclass(frozen=True, slots=True)
class Order:
    id: int
    customer_id: int
    sku: str
    quantity: int
    status: OrderStatus
    created_at: datetime
    updated_at: datetime

    def with_status(self, target: OrderStatus, now: datetime) -> Order:
        return replace(self, status=target, updated_at=now)
