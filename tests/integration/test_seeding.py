"""Idempotent seeding against SQLite and the real PostgreSQL: counts, updates, refusals that
write nothing, malformed seed files named by file and line, one event per new customer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ordtool.bootstrap import App
from ordtool.domain.events import CUSTOMER_CREATED, CUSTOMER_UPDATED
from ordtool.errors import AlreadyExists, InvalidInput, SeedFileError
from ordtool.services.generated_customers import generate_customers
from ordtool.services.seeding import SeedRecord, SeedReport, seed_customers
from ordtool.store.seed_files import packaged_seeds_dir, read_seed_dir
from ordtool.store.tables import customers, customers_outbox

SHIPPED = 12  # customers in seeds/customers.csv
GENERATED = 300


def records(seed_dir: Path | None = None, count: int = GENERATED) -> list[SeedRecord]:
    """What `ordtool seed --count N` loads: the seed files, then N generated customers."""
    loaded = read_seed_dir(seed_dir or packaged_seeds_dir())
    return loaded + [
        SeedRecord(c, f"generated #{i}") for i, c in enumerate(generate_customers(count, 1), 1)
    ]


def seed(app: App, loaded: list[SeedRecord], *, idempotent: bool = True) -> SeedReport:
    return seed_customers(app.customers_uow, loaded, idempotent=idempotent)


def rows(app: App) -> tuple[list[Any], list[Any]]:
    """Every customer and every outbox row, to prove that nothing changed."""
    with app.customers_engine.connect() as connection:
        people = list(connection.execute(select(customers).order_by(customers.c.id)))
        outbox = list(connection.execute(select(customers_outbox).order_by(customers_outbox.c.id)))
    return people, outbox


def write_seed(directory: Path, name: str, content: str | bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


HEADER = "name,email,address\n"


def test_the_shipped_seeds_are_there() -> None:
    loaded = read_seed_dir(packaged_seeds_dir())
    assert len(loaded) == SHIPPED
    assert loaded[0].source.endswith("customers.csv:2")  # line 1 is the header


def test_first_run_then_idempotent_rerun(any_app: App) -> None:
    loaded = records()
    assert seed(any_app, loaded) == SeedReport(created=SHIPPED + GENERATED, updated=0, unchanged=0)
    people, outbox = rows(any_app)
    assert len(people) == SHIPPED + GENERATED
    assert {p.email for p in people} == {r.customer.email for r in loaded}

    # One customer.created per new customer, carrying that customer.
    assert [row.event_type for row in outbox] == [CUSTOMER_CREATED] * len(people)
    assert sorted(row.aggregate_id for row in outbox) == [p.id for p in people]
    by_id = {p.id: p for p in people}
    for row in outbox:
        data = json.loads(row.payload)["data"]
        assert data["email"] == by_id[row.aggregate_id].email

    assert seed(any_app, records()) == SeedReport(created=0, updated=0, unchanged=len(people))
    assert rows(any_app) == (people, outbox)


def test_a_changed_name_is_updated(any_app: App, tmp_path: Path) -> None:
    seed(any_app, records(count=0))
    before, outbox_before = rows(any_app)
    changed = tmp_path / "seeds"
    original = (packaged_seeds_dir() / "customers.csv").read_text(encoding="utf-8")
    write_seed(changed, "customers.csv", original.replace("Ada Lovelace", "Augusta Ada King"))
    assert seed(any_app, records(changed, count=0)) == SeedReport(
        created=0, updated=1, unchanged=SHIPPED - 1
    )
    after, outbox_after = rows(any_app)
    ada = next(p for p in after if p.email == "ada@example.com")
    assert ada.name == "Augusta Ada King"
    assert ada.updated_at > ada.created_at
    assert [p for p in after if p.id != ada.id] == [p for p in before if p.id != ada.id]
    [event] = outbox_after[len(outbox_before) :]
    assert event.event_type == CUSTOMER_UPDATED and event.aggregate_id == ada.id
    assert json.loads(event.payload)["data"]["name"] == "Augusta Ada King"


def test_without_idempotent_an_existing_email_writes_nothing(any_app: App) -> None:
    seed(any_app, records(count=0))
    before = rows(any_app)
    # Generated customers are new, the shipped ones exist: none of the new ones may be written.
    with pytest.raises(AlreadyExists) as caught:
        seed(any_app, records(count=50), idempotent=False)
    message = str(caught.value)
    assert f"{SHIPPED} of these customers already exist" in message
    assert "ada@example.com" in message and "customers.csv:2" in message
    assert "nothing was written" in message
    assert rows(any_app) == before


def test_duplicate_email_inside_the_seed_files_names_both_lines(
    any_app: App, tmp_path: Path
) -> None:
    directory = tmp_path / "seeds"
    write_seed(directory, "a.csv", HEADER + "Ann,ann@example.com,1 Rd\nBob,bob@example.com,2 Rd\n")
    second = write_seed(
        directory, "b.csv", HEADER + "Cy,cy@example.com,3 Rd\nAnn Two,ANN@example.com,4 Rd\n"
    )
    with pytest.raises(InvalidInput) as caught:
        seed(any_app, records(directory, count=0))
    message = str(caught.value)
    assert message.startswith(f"{second}:3: email ann@example.com")
    assert f"{directory / 'a.csv'}:2" in message
    assert rows(any_app) == ([], [])


@pytest.mark.parametrize(
    ("content", "line", "says"),
    [
        (HEADER + "Ann,ann@example.com,1 Rd\nBob,bob@example.com\n", 3, "expected 3 columns"),
        ("name,email\nAnn,ann@example.com\n", 1, "the header must be name,email,address"),
        (HEADER + "Ann,ann@example.com,1 Rd\nBob,bob@example.com,2 Rd,extra\n", 3, "got 4"),
        (HEADER + "Ann,ann@example.com,1 Rd\nBob,not-an-email,2 Rd\n", 3, "email"),
        (HEADER + "Ann,ann@example.com,1 Rd\n,bob@example.com,2 Rd\n", 3, "name must not be"),
        (HEADER.encode() + b"Ann,ann@example.com,1 Rd\nB\xf6b,bob@example.com,2 Rd\n", 3, "UTF-8"),
        (b"", 1, "the header must be"),
    ],
    ids=[
        "missing-column",
        "bad-header",
        "extra-column",
        "bad-email",
        "empty-name",
        "latin-1",
        "empty",
    ],
)
def test_a_malformed_seed_file_names_file_and_line_and_nothing_is_written(
    sqlite_app: App, tmp_path: Path, content: str | bytes, line: int, says: str
) -> None:
    directory = tmp_path / "seeds"
    # A good file next to the bad one: it must not be half-loaded either.
    write_seed(directory, "a_good.csv", HEADER + "Zed,zed@example.com,9 Rd\n")
    bad = write_seed(directory, "b_bad.csv", content)
    with pytest.raises(SeedFileError) as caught:
        seed(sqlite_app, records(directory, count=10))
    message = str(caught.value)
    assert message.startswith(f"{bad}:{line}:"), message
    assert says in message
    assert "\n" not in message
    assert rows(sqlite_app) == ([], [])
