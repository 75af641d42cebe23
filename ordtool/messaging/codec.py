"""The event envelope on the wire (docs/events.md), decoded as untrusted input.

A message comes from the network: it may be any bytes. ``decode`` either returns a valid
``Envelope`` or raises ``PoisonMessage``, which the consumer dead-letters at once (retrying a
message that can never parse only delays the queue behind it).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from ordtool.domain.commands import describe
from ordtool.errors import InvalidInput

MAX_BODY_BYTES = 1024 * 1024
EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"

Source = Literal["orders", "customers"]
SOURCES: tuple[Source, ...] = ("orders", "customers")

EventType = Annotated[str, StringConstraints(pattern=EVENT_TYPE_PATTERN, max_length=64)]


class PoisonMessage(InvalidInput):
    title = "Undecodable event"


class Envelope(BaseModel):
    """What ``Event.envelope()`` writes. Unknown fields are ignored (a newer producer may add
    some); the known ones are checked."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: uuid.UUID
    type: EventType
    version: int = Field(ge=1, le=1_000)
    occurred_at: AwareDatetime
    correlation_id: str | None = Field(default=None, max_length=200)
    data: dict[str, Any]


def decode(body: bytes) -> Envelope:
    if len(body) > MAX_BODY_BYTES:
        raise PoisonMessage(f"event body of {len(body)} bytes is over {MAX_BODY_BYTES}")
    try:
        return Envelope.model_validate_json(body)
    except ValidationError as exc:
        raise PoisonMessage(f"not an event envelope: {describe(exc)}") from None


def source_of(event_type: str) -> Source:
    """Which database's outbox an event comes from: the customer service's database owns the
    ``customer.*`` events, the order service's database all the others."""
    return "customers" if event_type.startswith("customer.") else "orders"
