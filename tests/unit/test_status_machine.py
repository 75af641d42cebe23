"""The order status machine of design.md section 3, checked pair by pair.

The expected table is written out here rather than read from ``TRANSITIONS``, so a wrong
table in the code fails these tests instead of agreeing with itself.
"""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import product

import pytest

from ordtool.domain.orders import Order, OrderStatus, allowed_values, check_transition
from ordtool.errors import ForbiddenTransition, InvalidInput

PENDING, COMPLETED, FAILED = OrderStatus.PENDING, OrderStatus.COMPLETED, OrderStatus.FAILED
ALLOWED = {(PENDING, COMPLETED), (PENDING, FAILED)}
ALL_PAIRS = list(product(OrderStatus, OrderStatus))
FORBIDDEN = [(a, b) for a, b in ALL_PAIRS if a != b and (a, b) not in ALLOWED]


def test_the_statuses_are_exactly_the_three_of_the_design() -> None:
    assert allowed_values() == ["PENDING", "COMPLETED", "FAILED"]
    assert len(FORBIDDEN) == 4


@pytest.mark.parametrize(("current", "target"), sorted(ALLOWED))
def test_allowed_transition_changes_the_status(current: OrderStatus, target: OrderStatus) -> None:
    assert check_transition(current, target) is True


@pytest.mark.parametrize("status", list(OrderStatus))
def test_same_status_is_a_no_op_so_retries_are_safe(status: OrderStatus) -> None:
    assert check_transition(status, status) is False


@pytest.mark.parametrize(("current", "target"), FORBIDDEN)
def test_forbidden_transition_is_a_conflict_that_names_both(
    current: OrderStatus, target: OrderStatus
) -> None:
    with pytest.raises(ForbiddenTransition) as caught:
        check_transition(current, target)
    error = caught.value
    assert (error.exit_code, error.http_status) == (2, 409)
    assert f"from {current} to {target}" in str(error)
    # Every forbidden pair leaves a terminal state, and the message says so instead of
    # listing an empty set of choices.
    assert "terminal" in str(error)
    assert "\n" not in str(error)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("PENDING", PENDING),
        ("completed", COMPLETED),
        ("  Failed ", FAILED),
        (COMPLETED, COMPLETED),
    ],
)
def test_parse_accepts_any_case_and_spacing(raw: object, expected: OrderStatus) -> None:
    assert OrderStatus.parse(raw) is expected


@pytest.mark.parametrize("raw", ["SHIPPED", "", "   ", "PENDINGX", None, 1, "COMPLETE"])
def test_parse_rejects_unknown_values_and_lists_the_allowed_ones(raw: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        OrderStatus.parse(raw)
    message = str(caught.value)
    assert "PENDING, COMPLETED, FAILED" in message
    assert caught.value.exit_code == 2
    assert caught.value.http_status == 422


def test_with_status_changes_only_status_and_updated_at() -> None:
    created = datetime(2026, 1, 1, tzinfo=UTC)
    later = datetime(2026, 1, 2, tzinfo=UTC)
    order = Order(1, 2, "SKU", 3, PENDING, created, created)
    moved = order.with_status(COMPLETED, later)
    assert moved == Order(1, 2, "SKU", 3, COMPLETED, created, later)
    assert order.status is PENDING  # orders are immutable values
