"""Validated value types shared by every command, seed row and request body.

Each validator's message says what was wrong and how to fix it; the CLI and HTTP adapters show
it as it is.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Annotated, Any

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BeforeValidator, PlainSerializer

from ordtool.domain.clock import as_utc, iso_z

MAX_QUANTITY = 10_000
MAX_ID = 2**63 - 1
MAX_SKU_LENGTH = 64
MAX_NAME_LENGTH = 200
MAX_ADDRESS_LENGTH = 500
MAX_EMAIL_LENGTH = 254

_DIGITS = re.compile(r"[0-9]+")
_SKU = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-/]*")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def whole_number(value: Any, what: str, low: int, high: int) -> int:
    """Accept an int or a string of digits only: '12a', '1.5', '-3', True are all refused."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        digits = value.strip().lstrip("0") or "0"
        # More digits than the maximum is out of range; deciding that by length also keeps
        # int() away from Python's 4,300-digit limit, whose message would reach the user.
        number = int(digits) if len(digits) <= len(str(high)) else None
    if number is None or not low <= number <= high:
        raise ValueError(f"{what} must be a whole number from {low} to {high}, got {_shown(value)}")
    return number


def _positive_id(value: Any) -> int:
    try:
        return whole_number(value, "an id", 1, MAX_ID)
    except ValueError:
        raise ValueError(
            f"an id must be a positive whole number (digits only), got {_shown(value)}"
        ) from None


def _quantity(value: Any) -> int:
    return whole_number(value, "quantity", 1, MAX_QUANTITY)


def _text(value: Any, what: str, max_length: int) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be text, got {_shown(value)}")
    text = unicodedata.normalize("NFC", value).strip()
    if not text:
        raise ValueError(f"{what} must not be empty")
    if len(text) > max_length:
        raise ValueError(f"{what} must be at most {max_length} characters, got {len(text)}")
    if any(unicodedata.category(char) == "Cc" for char in text):
        raise ValueError(f"{what} must not contain control characters such as newlines or tabs")
    return text


def _name(value: Any) -> str:
    return _text(value, "name", MAX_NAME_LENGTH)


def _address(value: Any) -> str:
    return _text(value, "address", MAX_ADDRESS_LENGTH)


def _sku(value: Any) -> str:
    text = _text(value, "sku", MAX_SKU_LENGTH)
    if not _SKU.fullmatch(text):
        raise ValueError(
            "sku may hold only letters, digits and . _ - /, starting with a letter or digit, "
            f"got {_shown(text)}"
        )
    return text


def _email(value: Any) -> str:
    text = _text(value, "email", MAX_EMAIL_LENGTH)
    try:
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"email {_shown(text)} is not valid: {exc}") from None
    # Emails are the natural key for seeding: one spelling per address.
    return checked.normalized.lower()


def _utc(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("z", "Z"))
        except ValueError:
            raise ValueError(
                f"time must be ISO 8601 with a zone, e.g. 2026-01-31T12:00:00Z, got {_shown(value)}"
            ) from None
    if not isinstance(value, datetime):
        raise ValueError(f"time must be ISO 8601 with a zone, got {_shown(value)}")
    return as_utc(value)


PositiveId = Annotated[int, BeforeValidator(_positive_id)]
Quantity = Annotated[int, BeforeValidator(_quantity)]
Sku = Annotated[str, BeforeValidator(_sku)]
Name = Annotated[str, BeforeValidator(_name)]
Address = Annotated[str, BeforeValidator(_address)]
Email = Annotated[str, BeforeValidator(_email)]
UtcDatetime = Annotated[
    datetime, BeforeValidator(_utc), AfterValidator(as_utc), PlainSerializer(iso_z, return_type=str)
]
