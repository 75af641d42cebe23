"""UTC time: the only kind of time ordtool stores or sends."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """Return ``moment`` in UTC; a naive datetime is refused because its zone is a guess."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a timestamp needs a time zone, e.g. 2026-01-31T12:00:00Z")
    return moment.astimezone(UTC)


def iso_z(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix, the one wire format for time."""
    return as_utc(moment).isoformat().replace("+00:00", "Z")
