"""Idempotent seeding of customers, matched by email, in bulk and in one transaction."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from ordtool.domain.chunks import batched
from ordtool.domain.clock import utc_now
from ordtool.domain.commands import CreateCustomer
from ordtool.domain.customers import Customer
from ordtool.domain.events import customer_created, customer_updated
from ordtool.errors import AlreadyExists, InvalidInput
from ordtool.services.ports import CustomersUnitOfWork, CustomersUowFactory

WRITE_CHUNK = 2_000
Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class SeedRecord:
    customer: CreateCustomer
    source: str  # where it came from ("path:line" or "generated #n"), shown in errors


@dataclass(frozen=True, slots=True)
class SeedReport:
    created: int
    updated: int
    unchanged: int


def seed_customers(
    uow_factory: CustomersUowFactory,
    records: Sequence[SeedRecord],
    *,
    idempotent: bool,
    progress: Progress | None = None,
) -> SeedReport:
    """Create the customers that do not exist; with ``idempotent``, update those whose name
    or address changed and leave the rest. Without it, any existing email is an error.
    Everything commits together or nothing does."""
    _reject_duplicate_emails(records)
    advance = progress or (lambda _n: None)
    with uow_factory(write=True) as uow:
        existing = uow.customers.by_emails(r.customer.email for r in records)
        if existing and not idempotent:
            raise _already_seeded(records, existing)
        new = [r.customer for r in records if r.customer.email not in existing]
        changed = _changed(records, existing, utc_now())
        advance(len(records) - len(new) - len(changed))
        _create(uow, new, advance)
        _update(uow, changed, advance)
        uow.commit()
    return SeedReport(len(new), len(changed), len(records) - len(new) - len(changed))


def _create(uow: CustomersUnitOfWork, new: list[CreateCustomer], advance: Progress) -> None:
    now = utc_now()
    for chunk in batched(new, WRITE_CHUNK):
        created = uow.customers.add_many(chunk, now)
        uow.outbox.add([customer_created(customer) for customer in created])
        advance(len(chunk))


def _update(uow: CustomersUnitOfWork, changed: list[Customer], advance: Progress) -> None:
    for chunk in batched(changed, WRITE_CHUNK):
        uow.customers.update_many(chunk)
        uow.outbox.add([customer_updated(customer) for customer in chunk])
        advance(len(chunk))


def _changed(
    records: Sequence[SeedRecord], existing: dict[str, Customer], now: datetime
) -> list[Customer]:
    changed = []
    for record in records:
        current = existing.get(record.customer.email)
        wanted = record.customer
        if current and (current.name, current.address) != (wanted.name, wanted.address):
            changed.append(
                replace(current, name=wanted.name, address=wanted.address, updated_at=now)
            )
    return changed


def _reject_duplicate_emails(records: Sequence[SeedRecord]) -> None:
    first_seen: dict[str, str] = {}
    for record in records:
        email = record.customer.email
        if email in first_seen:
            raise InvalidInput(
                f"{record.source}: email {email} is already used at {first_seen[email]}",
                hint="each email may appear once across the seed files",
            )
        first_seen[email] = record.source


def _already_seeded(records: Sequence[SeedRecord], existing: dict[str, Customer]) -> AlreadyExists:
    first = next(r for r in records if r.customer.email in existing)
    return AlreadyExists(
        f"{len(existing)} of these customers already exist, the first {first.customer.email} "
        f"({first.source}); nothing was written",
        hint="run with --idempotent to keep existing customers and add only new ones",
    )
