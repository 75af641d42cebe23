"""Customers: owned by the customer service; the email is the natural key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Customer:
    id: int
    name: str
    email: str
    address: str
    created_at: datetime
    updated_at: datetime
