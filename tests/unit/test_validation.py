"""Every validation rule of the commands (ordtool/domain/values.py and commands.py).

Input goes through ``parse_input``, the one door the CLI, the HTTP apps and the seeder use, so
each test also proves the rule surfaces as one InvalidInput line (exit 2, HTTP 422).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel

from ordtool.domain.commands import (
    MAX_PAGE_SIZE,
    ById,
    ChangeOrderStatus,
    CreateCustomer,
    OrderQuery,
    Page,
    PlaceOrder,
    parse_input,
)
from ordtool.domain.orders import OrderStatus
from ordtool.domain.values import MAX_ID, MAX_QUANTITY, MAX_SKU_LENGTH
from ordtool.errors import InvalidInput

ORDER = {"customer_id": "1", "sku": "BOOK-42", "quantity": "2"}
CUSTOMER = {"name": "Ada Lovelace", "email": "ada@example.com", "address": "12 St James's Sq"}
LONG = "x" * 10_000


def rejected(model: type[BaseModel], raw: dict[str, Any]) -> str:
    """The one-line message parse_input gives for bad input."""
    with pytest.raises(InvalidInput) as caught:
        parse_input(model, raw)
    error = caught.value
    assert (error.exit_code, error.http_status) == (2, 422)
    message = str(error)
    assert "\n" not in message and "\r" not in message
    # A 10,000-character input must not come back as a 10,000-character message.
    assert len(message) < 300, message
    return message


# --- orders -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"), [(1, 1), ("1", 1), (" 7 ", 7), (MAX_QUANTITY, MAX_QUANTITY)]
)
def test_quantity_accepts_whole_numbers_in_range(raw: Any, expected: int) -> None:
    assert parse_input(PlaceOrder, ORDER | {"quantity": raw}).quantity == expected


@pytest.mark.parametrize(
    "raw",
    [
        0,
        "0",
        -1,
        "-1",
        1.5,
        "1.5",
        1.0,
        "abc",
        "",
        "1e3",
        "\uff11",  # a full-width digit 1: str.isdigit() says yes, the rule says digits 0-9 only
        True,
        None,
        MAX_QUANTITY + 1,
        str(MAX_QUANTITY + 1),
        10**30,
        "9" * 5000,
    ],
)
def test_quantity_rejects_anything_but_a_whole_number_from_1_to_max(raw: Any) -> None:
    message = rejected(PlaceOrder, ORDER | {"quantity": raw})
    assert f"quantity must be a whole number from 1 to {MAX_QUANTITY}" in message


@pytest.mark.parametrize(("raw", "expected"), [("12", 12), (12, 12), (str(MAX_ID), MAX_ID)])
def test_customer_id_accepts_positive_whole_numbers(raw: Any, expected: int) -> None:
    assert parse_input(PlaceOrder, ORDER | {"customer_id": raw}).customer_id == expected


@pytest.mark.parametrize(
    "raw", ["12a", "-3", -3, 0, "0", "", " ", "1.0", 1.5, True, False, None, MAX_ID + 1, "0x10"]
)
def test_customer_id_rejects_letters_signs_zero_and_empty(raw: Any) -> None:
    message = rejected(PlaceOrder, ORDER | {"customer_id": raw})
    assert message.startswith("customer_id: an id must be a positive whole number")


@pytest.mark.parametrize("raw", ["12a", "-3", 0, ""])
def test_an_order_or_customer_id_argument_follows_the_same_rule(raw: Any) -> None:
    assert "positive whole number" in rejected(ById, {"id": raw})


@pytest.mark.parametrize("sku", ["A", "BOOK-42", "a.b_c-d/e", "9" * MAX_SKU_LENGTH])
def test_sku_accepts_letters_digits_and_separators(sku: str) -> None:
    assert parse_input(PlaceOrder, ORDER | {"sku": sku}).sku == sku


@pytest.mark.parametrize(
    ("sku", "says"),
    [
        ("", "sku must not be empty"),
        ("   ", "sku must not be empty"),
        (LONG, "sku must be at most 64 characters, got 10000"),
        ("x" * (MAX_SKU_LENGTH + 1), "at most 64 characters"),
        ("BOOK 42", "sku may hold only"),
        ("-BOOK", "sku may hold only"),
        ("BOOK;DROP", "sku may hold only"),
        ("BOOK\n42", "control characters"),
        ("BOOK\x0042", "control characters"),
        (42, "sku must be text"),
    ],
)
def test_sku_rules(sku: Any, says: str) -> None:
    assert says in rejected(PlaceOrder, ORDER | {"sku": sku})


def test_sku_is_trimmed() -> None:
    assert parse_input(PlaceOrder, ORDER | {"sku": "  BOOK-1 "}).sku == "BOOK-1"


@pytest.mark.parametrize("status", ["SHIPPED", "", "pending!", "1"])
def test_unknown_status_lists_the_allowed_values(status: str) -> None:
    message = rejected(ChangeOrderStatus, {"order_id": "1", "status": status})
    assert "PENDING, COMPLETED, FAILED" in message


def test_status_is_read_case_insensitively() -> None:
    command = parse_input(ChangeOrderStatus, {"order_id": "3", "status": "failed"})
    assert (command.order_id, command.status) == (3, OrderStatus.FAILED)


# --- customers ----------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["name", "address"])
@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("", "must not be empty"),
        (" \u00a0 ", "must not be empty"),
        (LONG, "characters, got 10000"),
        ("Ada\nLovelace", "control characters"),
        ("Ada\tLovelace", "control characters"),
        ("Ada\x1b[31mLovelace", "control characters"),
        ("Ada\x7fLovelace", "control characters"),
        (None, "must be text"),
        (123, "must be text"),
    ],
)
def test_name_and_address_rules(field: str, value: Any, says: str) -> None:
    message = rejected(CreateCustomer, CUSTOMER | {field: value})
    assert message.startswith(field) and says in message


def test_text_is_trimmed_and_unicode_normalized() -> None:
    decomposed = "Jose\u0301 Mari\u0301a"  # "José María" with combining accents
    command = parse_input(CreateCustomer, CUSTOMER | {"name": f"  {decomposed} "})
    assert command.name == "Jos\u00e9 Mar\u00eda"


@pytest.mark.parametrize(
    "email",
    [
        "",
        "not-an-email",
        "ada@",
        "@example.com",
        "ada lovelace@example.com",
        "ada@example",
        "ada@@example.com",
        "ada@exa mple.com",
        "a" * 250 + "@example.com",
        "ada@example.com>",
    ],
)
def test_invalid_emails_are_rejected(email: str) -> None:
    assert rejected(CreateCustomer, CUSTOMER | {"email": email}).startswith("email")


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("Ada@Example.COM", "ada@example.com"),
        ("  GRACE.Hopper@EXAMPLE.org ", "grace.hopper@example.org"),
    ],
)
def test_email_is_stored_in_lower_case(raw: str, stored: str) -> None:
    assert parse_input(CreateCustomer, CUSTOMER | {"email": raw}).email == stored


def test_unknown_and_missing_fields_are_named() -> None:
    message = rejected(CreateCustomer, {"name": "Ada", "emial": "ada@example.com"})
    assert "emial is not a known field" in message
    assert "email is required" in message
    assert "address is required" in message


def test_every_bad_field_is_reported_on_one_line() -> None:
    message = rejected(PlaceOrder, {"customer_id": "12a", "sku": "", "quantity": "abc"})
    assert "customer_id" in message and "sku" in message and "quantity" in message
    assert message.count(";") >= 2


# --- queries: time windows and pages --------------------------------------------------------


@pytest.mark.parametrize("field", ["since", "until"])
@pytest.mark.parametrize("value", ["2026-01-31T12:00:00", "2026-01-31", "2026-01-31 12:00"])
def test_times_without_a_zone_are_rejected(field: str, value: str) -> None:
    message = rejected(OrderQuery, {field: value})
    assert "zone" in message


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01T00:00:00Z", "", "12"])
def test_times_that_are_not_iso_8601_are_rejected(value: str) -> None:
    assert "ISO 8601" in rejected(OrderQuery, {"since": value})


@pytest.mark.parametrize(
    "value",
    [
        "2026-01-31T21:00:00+09:00",
        "2026-01-31T04:00:00-08:00",
        "2026-01-31T12:00:00Z",
        "2026-01-31t12:00:00z",
        "2026-01-31T12:00:00+00:00",
        datetime(2026, 1, 31, 12, tzinfo=UTC),
    ],
)
def test_times_with_an_offset_are_converted_to_utc(value: Any) -> None:
    query = parse_input(OrderQuery, {"since": value, "until": value})
    expected = datetime(2026, 1, 31, 12, tzinfo=UTC)
    for moment in (query.since, query.until):
        assert moment == expected
        assert moment is not None and moment.utcoffset() is not None
        assert moment.tzinfo == UTC  # the offset itself is UTC, not just the same instant


def test_since_after_until_is_rejected() -> None:
    message = rejected(
        OrderQuery, {"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}
    )
    assert "since must be before until" in message


def test_query_serializes_times_with_z() -> None:
    query = parse_input(OrderQuery, {"since": "2026-01-31T21:00:00+09:00"})
    assert query.model_dump(mode="json")["since"] == "2026-01-31T12:00:00Z"


@pytest.mark.parametrize(("raw", "expected"), [("1", 1), (20, 20), (str(MAX_PAGE_SIZE), 500)])
def test_limit_in_bounds(raw: Any, expected: int) -> None:
    assert parse_input(Page, {"limit": raw}).limit == expected


def test_limit_has_a_default() -> None:
    assert parse_input(Page, {}).limit == 50
    assert parse_input(OrderQuery, {}).limit == 50


@pytest.mark.parametrize(
    "raw",
    [
        0,
        "0",
        -1,
        "-1",
        MAX_PAGE_SIZE + 1,
        "501",
        "abc",
        "",
        1.5,
        True,
        None,
        10**12,
        "9" * 5000,
        "\u00b2",
    ],  # superscript 2 passes str.isdigit() but is no number
)
def test_limit_out_of_bounds_is_rejected(raw: Any) -> None:
    assert f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}" in rejected(
        OrderQuery, {"limit": raw}
    )


@pytest.mark.parametrize("raw", ["abc", "0", "-5"])
def test_cursor_must_be_a_positive_id(raw: str) -> None:
    assert rejected(Page, {"cursor": raw}).startswith("cursor")


def test_query_filters_are_validated_like_commands() -> None:
    message = rejected(OrderQuery, {"customer_id": "12a", "status": "SHIPPED"})
    assert "customer_id" in message and "PENDING, COMPLETED, FAILED" in message


def test_commands_are_immutable() -> None:
    command = parse_input(PlaceOrder, ORDER)
    with pytest.raises(Exception, match="frozen"):
        command.quantity = 5  # type: ignore[misc]
