"""Idempotent seeding (ordtool/services/seeding.py) and generated customers, without I/O."""

from __future__ import annotations

import pytest

from ordtool.domain.commands import CreateCustomer, parse_input
from ordtool.domain.events import CUSTOMER_CREATED, CUSTOMER_UPDATED
from ordtool.errors import AlreadyExists, InvalidInput
from ordtool.services import seeding
from ordtool.services.generated_customers import generate_customers
from ordtool.services.seeding import SeedRecord, SeedReport, seed_customers
from tests.unit.fakes import FakeDatabase, customers_uow_factory


def record(n: int, name: str | None = None, email: str | None = None) -> SeedRecord:
    customer = parse_input(
        CreateCustomer,
        {
            "name": name or f"Customer {n}",
            "email": email or f"c{n}@example.com",
            "address": f"{n} Main St",
        },
    )
    return SeedRecord(customer, f"seeds/customers.csv:{n + 1}")


RECORDS = [record(n) for n in range(1, 6)]


def seed(db: FakeDatabase, records: list[SeedRecord], *, idempotent: bool = True) -> SeedReport:
    return seed_customers(customers_uow_factory(db), records, idempotent=idempotent)


def test_first_run_creates_everyone_with_one_event_each() -> None:
    db = FakeDatabase()
    assert seed(db, RECORDS) == SeedReport(created=5, updated=0, unchanged=0)
    emails = sorted(c.email for c in db.committed.customers.values())
    assert emails == sorted(r.customer.email for r in RECORDS)
    events = db.committed.outbox
    assert [e.type for e in events] == [CUSTOMER_CREATED] * 5
    assert {e.data["email"] for e in events} == set(emails)
    assert db.commits == 1  # everything in one transaction


def test_second_idempotent_run_creates_nothing() -> None:
    db = FakeDatabase()
    seed(db, RECORDS)
    snapshot = (dict(db.committed.customers), list(db.committed.outbox))
    assert seed(db, RECORDS) == SeedReport(created=0, updated=0, unchanged=5)
    assert (db.committed.customers, db.committed.outbox) == snapshot


def test_a_changed_name_or_address_is_updated_with_an_event() -> None:
    db = FakeDatabase()
    seed(db, RECORDS)
    renamed = [*RECORDS[:2], record(3, name="Renamed Three"), *RECORDS[3:], record(6)]
    assert seed(db, renamed) == SeedReport(created=1, updated=1, unchanged=4)
    by_email = {c.email: c for c in db.committed.customers.values()}
    three = by_email["c3@example.com"]
    assert three.name == "Renamed Three"
    assert three.updated_at > three.created_at
    new_events = db.committed.outbox[5:]
    assert sorted(e.type for e in new_events) == [CUSTOMER_CREATED, CUSTOMER_UPDATED]
    updated = next(e for e in new_events if e.type == CUSTOMER_UPDATED)
    assert updated.aggregate_id == three.id and updated.data["name"] == "Renamed Three"


def test_without_idempotent_an_existing_customer_is_an_error_and_nothing_is_written() -> None:
    db = FakeDatabase()
    seed(db, RECORDS[:2])
    snapshot = (dict(db.committed.customers), list(db.committed.outbox), db.commits)
    with pytest.raises(AlreadyExists) as caught:
        seed(db, RECORDS, idempotent=False)
    message = str(caught.value)
    # It names the first clash (email and where it came from) and says nothing was written.
    assert "c1@example.com" in message and "seeds/customers.csv:2" in message
    assert "nothing was written" in message and "--idempotent" in message
    assert (db.committed.customers, db.committed.outbox, db.commits) == snapshot


def test_without_idempotent_a_fresh_database_is_seeded() -> None:
    db = FakeDatabase()
    assert seed(db, RECORDS, idempotent=False).created == 5


def test_a_duplicate_email_in_the_input_names_both_places_and_writes_nothing() -> None:
    db = FakeDatabase()
    clash = SeedRecord(RECORDS[1].customer, "more/extra.csv:7")
    with pytest.raises(InvalidInput) as caught:
        seed(db, [*RECORDS, clash])
    message = str(caught.value)
    assert message.startswith("more/extra.csv:7")
    assert "c2@example.com" in message and "seeds/customers.csv:3" in message
    assert db.commits == 0 and db.open_units == 0  # refused before opening a transaction


def test_many_customers_are_written_in_chunks_and_progress_adds_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(seeding, "WRITE_CHUNK", 40)
    db = FakeDatabase()
    records = [SeedRecord(c, f"generated #{i}") for i, c in enumerate(generate_customers(100, 3))]
    seen: list[int] = []
    report = seed_customers(
        customers_uow_factory(db), records, idempotent=True, progress=seen.append
    )
    assert report == SeedReport(created=100, updated=0, unchanged=0)
    assert sum(seen) == 100
    assert db.last_customers is not None and db.last_customers.add_many_calls == 3  # 40+40+20
    assert len(db.committed.outbox) == 100
    seen.clear()
    seed_customers(customers_uow_factory(db), records, idempotent=True, progress=seen.append)
    assert sum(seen) == 100  # a re-run reports its unchanged rows as progress too


# --- generated customers --------------------------------------------------------------------


def test_generated_customers_are_the_same_for_the_same_seed() -> None:
    first = list(generate_customers(300, 7))
    again = list(generate_customers(300, 7))
    assert [c.model_dump() for c in first] == [c.model_dump() for c in again]
    other = list(generate_customers(300, 8))
    assert [c.model_dump() for c in other] != [c.model_dump() for c in first]


@pytest.mark.parametrize("count", [0, 1, 5_000])
def test_exactly_n_customers_with_distinct_emails_and_addresses(count: int) -> None:
    people = list(generate_customers(count, 42))
    assert len(people) == count
    assert len({p.email for p in people}) == count
    # The old system gave many customers one address; the database does not forbid it.
    assert len({p.address for p in people}) == count


def test_generated_customers_pass_the_same_validation_as_typed_input() -> None:
    people = list(generate_customers(2_000, 11))
    for person in people[::20]:
        raw = person.model_dump()
        # Generation skips validation for speed; the validated copy must be identical.
        assert parse_input(CreateCustomer, raw).model_dump() == raw


def test_a_prefix_of_a_larger_run_is_the_smaller_run() -> None:
    # `--count 10` then `--count 20` with one seed: the first ten are the same people, so a
    # grown idempotent seed run only adds the new ones.
    small = [c.model_dump() for c in generate_customers(10, 5)]
    large = [c.model_dump() for c in generate_customers(20, 5)]
    assert large[:10] == small
